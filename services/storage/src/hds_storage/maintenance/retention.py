"""Retention of what institutions publish: the only way a published package goes.

No quota ever evicts an institution's packages (:mod:`hds_storage.quota`). Instead a
package is kept while any access code issued for it is valid, plus the retention period
(``HDS_STORAGE_RETENTION_DAYS``); a package for which no code was ever issued is kept for
the period after it completed. The codes service reports until when a package's codes are
valid whenever it issues, reactivates, expires or revokes one
(``PUT /internal/v1/packages/{id}/retention``). That report only says when to look: before
it retires a package the sweep asks the codes service again, under the package lock, and
keeps the package when the answer is a later date or no answer comes. A lost or stale
report therefore keeps a package longer, never shorter.

When the period has passed, the maintenance sweep retires the package: the institution's
holdings and key slot go, with the rows and blobs nobody else holds, a log entry
(``package_retired``) and a notice to the institution (no patient data in it). Accounts
that imported the package or got it delivered keep their copies: those are theirs. A
retired package takes no new codes and no reactivation (409 ``package-retired``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hds_common.blobstore import BlobStore
from hds_common.db import utcnow
from hds_storage.clients.codes import CodesUnavailable
from hds_storage.clients.identity import IdentityClient
from hds_storage.errors import PackageNotFound, PackageRetired
from hds_storage.holdings.quota import release_holding
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.maintenance.collector import ItemRef, delete_blobs, remove_unheld_item
from hds_storage.maintenance.repository import MaintenanceRepository
from hds_storage.packages.repository import PackageRepository
from hds_storage.schemas import as_utc
from hds_storage.transactions import workflow_transaction

__all__ = [
    "CodesValidity",
    "Retired",
    "record_codes_validity",
    "retire_expired_packages",
]

# The authoritative answer of the codes service: until when a package's codes are valid
# (None: no code was ever issued). Raises CodesUnavailable when it cannot tell.
CodesValidity = Callable[[str], Awaitable[dt.datetime | None]]

log = structlog.get_logger("hds.storage.retention")

_NOTICE_SUBJECT = "A published package was deleted after its retention period"


@dataclass(frozen=True, slots=True)
class Retired:
    package_id: str
    institution_id: str
    completed_at: dt.datetime | None
    codes_valid_until: dt.datetime | None
    items_removed: int


async def record_codes_validity(
    session_maker: async_sessionmaker[AsyncSession], package_id: str, valid_until: dt.datetime
) -> None:
    """Record the codes service's report; 404 or 409 (retired) when no code may refer to
    the package any more."""
    async with workflow_transaction(session_maker) as session:
        packages = PackageRepository(session)
        if await packages.set_codes_validity(package_id, valid_until):
            return
        package = await packages.package(package_id)
        if package is None:
            raise PackageNotFound("no such package")
        raise PackageRetired()


async def _retire(
    session_maker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    codes_validity: CodesValidity,
    package_id: str,
    *,
    kept_before: dt.datetime,
    now: dt.datetime,
) -> Retired | None:
    async with workflow_transaction(session_maker) as session:
        packages = PackageRepository(session)
        holdings_repo = HoldingsRepository(session)
        package = await packages.lock_package(package_id)
        if package is None or package.retired_at is not None or package.state != "complete":
            return None
        # Under the package lock (a code issued or reactivated meanwhile waits for it, or
        # got in first): the codes service's own word, not the report we were given.
        try:
            valid_until = await codes_validity(package.id)
        except CodesUnavailable as exc:
            log.warning("retention_check_failed", package_id=package.id, error=str(exc))
            return None
        end = valid_until or package.completed_at
        if end is None or as_utc(end) >= kept_before:
            package.codes_valid_until = valid_until
            return None
        institution_id = package.institution_id
        await holdings_repo.lock_usage(institution_id)
        holdings = await holdings_repo.holdings_in_package(institution_id, package.id)
        sizes = await holdings_repo.item_sizes(holdings)
        for holding in holdings:
            await release_holding(session, holding, institution_id=institution_id)
        await holdings_repo.add_usage(institution_id, -sum(sizes.values()))
        await packages.delete_slot(package.id, institution_id)
        keys: list[str] = []
        for holding in holdings:
            item = ItemRef(holding.package_id, holding.item_kind, holding.item_id)
            keys += await remove_unheld_item(session, item)
        retired = Retired(
            package_id=package.id,
            institution_id=institution_id,
            completed_at=package.completed_at,
            codes_valid_until=valid_until,
            items_removed=len(holdings),
        )
        if await holdings_repo.package_is_held(package.id):
            package.retired_at = now  # others' copies keep the package row
        else:
            await packages.delete_package(package.id)
    await delete_blobs(store, keys)
    return retired


def _notice(retired: Retired, retention_days: float) -> str:
    codes = (
        f"its last access code expired on {as_utc(retired.codes_valid_until):%Y-%m-%d}"
        if retired.codes_valid_until
        else f"it was published on {as_utc(retired.completed_at):%Y-%m-%d} without access codes"
        if retired.completed_at
        else "it has no valid access code"
    )
    return (
        f"Package {retired.package_id} was deleted from your storage: {codes}, and the "
        f"retention period of {retention_days:g} days has passed. Patients and referrers "
        "who imported it keep their copies."
    )


async def retire_expired_packages(
    session_maker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    identity: IdentityClient | None,
    codes_validity: CodesValidity,
    *,
    retention_days: float,
    now: dt.datetime | None = None,
) -> list[Retired]:
    """One pass of the retention sweep (idempotent, safe on several replicas)."""
    now = now or utcnow()
    kept_before = now - dt.timedelta(days=retention_days)
    async with workflow_transaction(session_maker) as session:
        candidates = await MaintenanceRepository(session).packages_past_retention(
            kept_before=kept_before
        )
    done: list[Retired] = []
    for package_id in candidates:
        retired = await _retire(
            session_maker, store, codes_validity, package_id, kept_before=kept_before, now=now
        )
        if retired is None:
            continue
        done.append(retired)
        log.info(
            "package_retired",
            package_id=retired.package_id,
            institution_id=retired.institution_id,
            items_removed=retired.items_removed,
            retention_days=retention_days,
        )
        if identity is not None:
            await identity.notify(
                retired.institution_id,
                subject=_NOTICE_SUBJECT,
                text=_notice(retired, retention_days),
            )
    return done
