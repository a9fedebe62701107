"""Removal of items nobody holds any more, and of blobs no row refers to.

Order of writes everywhere: a blob is written before its row is committed, and a row is
deleted (committed) before its blob. A crash in between therefore leaves at worst a blob
without a row, never a row without a blob; :func:`sweep_orphans` removes such blobs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hds_common.blobstore import BlobStore, BlobStoreError
from hds_common.db import utcnow
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.ingest.repository import IngestRepository
from hds_storage.key_sessions.repository import KeySessionRepository
from hds_storage.maintenance.repository import MaintenanceRepository
from hds_storage.packages.repository import PackageRepository
from hds_storage.transactions import workflow_transaction

__all__ = [
    "OBJECTS_PREFIX",
    "ItemRef",
    "MaintenanceReport",
    "blob_key",
    "collect_items",
    "delete_blobs",
    "run_maintenance",
    "sweep_orphans",
]

log = structlog.get_logger("hds.storage.collector")

OBJECTS_PREFIX = "objects/"
_PAGE = 1000


def blob_key(package_id: str, object_id: str) -> str:
    return f"{OBJECTS_PREFIX}{package_id}/{object_id}"


@dataclass(frozen=True, slots=True)
class ItemRef:
    package_id: str
    kind: str  # "study" | "document"
    item_id: str


async def delete_blobs(store: BlobStore, keys: Iterable[str]) -> None:
    """Best effort: a blob that cannot be deleted now is an orphan the sweep retries."""
    for key in keys:
        try:
            await store.delete(key)
        except BlobStoreError as exc:
            log.warning("blob_delete_failed", key=key, error=str(exc))


async def remove_unheld_item(session: AsyncSession, item: ItemRef) -> list[str]:
    """Inside a transaction that holds the package lock: delete the item's rows if no
    holding refers to it; returns the blob keys to delete after commit."""
    if await HoldingsRepository(session).item_is_held(item.item_id):
        return []
    sweeps = MaintenanceRepository(session)
    if item.kind == "study":
        return await sweeps.delete_study_rows(item.item_id)
    return await sweeps.delete_document_row(item.item_id)


async def collect_items(
    session_maker: async_sessionmaker[AsyncSession], store: BlobStore, items: Iterable[ItemRef]
) -> None:
    """Delete the rows and blobs of items that no holding refers to any more."""
    for item in items:
        async with workflow_transaction(session_maker) as session:
            if await PackageRepository(session).lock_package(item.package_id) is None:
                continue
            keys = await remove_unheld_item(session, item)
        await delete_blobs(store, keys)


def _split(key: str) -> tuple[str, str] | None:
    parts = key[len(OBJECTS_PREFIX) :].split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return parts[0], parts[1]


async def sweep_orphans(session_maker: async_sessionmaker[AsyncSession], store: BlobStore) -> int:
    """Delete blobs under ``objects/`` that no row refers to.

    Safe while uploads run: a blob is listed only after its upload batch row was
    committed; if that batch still exists the blob is left alone, and if it is gone the
    upload either committed the blob's row (seen by the row check, which runs after the
    batch check) or failed and was cleaned up."""
    removed = 0
    page: list[tuple[str, str, str]] = []

    async def flush_page() -> int:
        if not page:
            return 0
        async with workflow_transaction(session_maker) as session:
            busy = await IngestRepository(session).packages_with_batches(p for _, p, _ in page)
            candidates = [(k, p, o) for k, p, o in page if p not in busy]
            present = await MaintenanceRepository(session).object_ids_present(
                o for _, _, o in candidates
            )
        orphans = [k for k, _, o in candidates if o not in present]
        await delete_blobs(store, orphans)
        if orphans:
            log.info("orphan_blobs_removed", count=len(orphans))
        page.clear()
        return len(orphans)

    async for info in store.list(OBJECTS_PREFIX):
        split = _split(info.key)
        if split is None:
            continue
        page.append((info.key, *split))
        if len(page) >= _PAGE:
            removed += await flush_page()
    removed += await flush_page()
    return removed


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    stale_batches: int
    completed_packages: int
    orphans_removed: int
    unheld_items_removed: int = 0


async def collect_unheld(session_maker: async_sessionmaker[AsyncSession], store: BlobStore) -> int:
    """Items nobody holds are normally removed right after the holding goes; this catches
    the ones a crash (or a failed delete) left behind."""
    async with workflow_transaction(session_maker) as session:
        found = await MaintenanceRepository(session).unheld_items()
    await collect_items(session_maker, store, (ItemRef(*item) for item in found))
    return len(found)


async def run_maintenance(
    session_maker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    *,
    upload_stale_seconds: float,
    package_idle_timeout_seconds: float,
    now: dt.datetime | None = None,
) -> MaintenanceReport:
    """One pass: drop dead uploads, complete idle packages, remove items nobody holds and
    blobs no row refers to. Every step is a single conditional statement or idempotent
    (re-checked under the package lock), so replicas may overlap."""
    now = now or utcnow()
    async with workflow_transaction(session_maker) as session:
        stale = await MaintenanceRepository(session).delete_stale_batches(
            heartbeat_before=now - dt.timedelta(seconds=upload_stale_seconds)
        )
    async with workflow_transaction(session_maker) as session:
        completed = await PackageRepository(session).complete_idle_packages(
            now=now, idle_before=now - dt.timedelta(seconds=package_idle_timeout_seconds)
        )
    async with workflow_transaction(session_maker) as session:
        # Ended sessions are deleted when they end; this catches the ones that expired.
        await KeySessionRepository(session).delete_expired(now)
    unheld = await collect_unheld(session_maker, store)
    orphans = await sweep_orphans(session_maker, store)
    if stale or completed or orphans or unheld:
        log.info(
            "maintenance",
            stale_batches=stale,
            completed_packages=completed,
            orphans_removed=orphans,
            unheld_items_removed=unheld,
        )
    return MaintenanceReport(stale, completed, orphans, unheld)
