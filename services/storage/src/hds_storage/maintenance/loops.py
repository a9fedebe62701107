"""The background passes of a serving process: maintenance (dead uploads, idle packages,
unheld items, orphan blobs, retention) and the key session sweep. Both are safe with
several replicas, and a failed pass is retried by the next."""

from __future__ import annotations

import asyncio

import structlog

from hds_common.db import utcnow
from hds_storage.key_sessions.repository import KeySessionRepository
from hds_storage.maintenance.collector import run_maintenance
from hds_storage.maintenance.retention import retire_expired_packages
from hds_storage.runtime import Runtime
from hds_storage.transactions import workflow_transaction

__all__ = ["key_session_sweep_loop", "maintenance_loop"]

log = structlog.get_logger("hds.storage")


async def maintenance_loop(runtime: Runtime) -> None:
    """Orphan sweep, dead-upload cleanup, idle-package completion and retention, at start
    and then every ``maintenance_interval_seconds``."""
    settings = runtime.settings
    while True:
        try:
            await run_maintenance(
                runtime.session_maker,
                runtime.store,
                upload_stale_seconds=settings.upload_stale_seconds,
                package_idle_timeout_seconds=settings.package_idle_timeout_seconds,
            )
            await retire_expired_packages(
                runtime.session_maker,
                runtime.store,
                runtime.identity,
                runtime.codes.codes_valid_until,
                retention_days=settings.retention_days,
            )
        except Exception as exc:  # keep the loop alive; the next pass retries
            log.warning("maintenance_failed", error=f"{type(exc).__name__}: {exc}")
        runtime.plans.expire()
        await asyncio.sleep(settings.maintenance_interval_seconds)


async def key_session_sweep_loop(runtime: Runtime) -> None:
    """Delete expired key sessions soon after they expire: what no row holds, no copy of
    the database taken later can open."""
    while True:
        try:
            async with workflow_transaction(runtime.session_maker) as session:
                swept = await KeySessionRepository(session).delete_expired(utcnow())
            if swept:
                log.info("key_sessions_swept", count=swept)
        except Exception as exc:  # keep the loop alive; the next pass retries
            log.warning("key_session_sweep_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(runtime.settings.key_session_sweep_seconds)
