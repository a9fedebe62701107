"""Quota: plaintext bytes of an account's holdings against the quota the identity service
sets (default 1 GiB for patients and referrers, per-account override; institutions have
none unless one is configured).

Invariant, kept under any concurrency: ``used + reserved <= quota`` whenever something
is added, where ``reserved`` is the sum over the account's uploads in flight. Uploads
reserve before their bytes are stored (in one transaction holding the account's usage
lock), and turn the reservation into usage when they commit; a failed upload drops its
reservation, a crashed one loses it to the sweep.

What may be deleted to make room (nothing else ever is):

* only for what the account adds itself (its own uploads and code imports), never for a
  share or a delivery another account pushes into it (:data:`Addition`);
* only in automatic deletion mode, and only the account's oldest whole studies (never
  documents, never studies of a package still being published, never items of the
  package being added to);
* never anything of an institution: what it publishes is governed by retention
  (:mod:`hds_storage.maintenance.retention`), and a quota it may have refuses uploads with 507.

Otherwise an addition that does not fit answers 507 and removes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from hds_common.db import utcnow
from hds_common.errors import InsufficientStorage
from hds_storage.clients.identity import AccountInfo
from hds_storage.errors import UploadExpired
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.maintenance.collector import ItemRef
from hds_storage.models import Holding
from hds_storage.packages.repository import PackageRepository
from hds_storage.shares.repository import ShareRepository

__all__ = ["Addition", "Room", "make_room", "may_evict", "release_holding", "reserve"]

_UNLIMITED = 2**62

# Who adds: the account itself (upload, code import), or another account (share, delivery).
Addition = Literal["own", "pushed"]


@dataclass
class Room:
    """The outcome of :func:`make_room`: bytes free now, items removed to get there."""

    free: int
    evicted: list[ItemRef] = field(default_factory=list)


async def release_holding(session: AsyncSession, holding: Holding, *, institution_id: str) -> None:
    """Remove one holding and the shares that gave the account this item; once it holds
    nothing more of the package, also the package's shares to it and its key slot (the
    publishing institution keeps its slot: it reissues codes with it)."""
    holdings, shares = HoldingsRepository(session), ShareRepository(session)
    await holdings.delete_holding(holding.id)
    await shares.delete_shares_to(holding.account_id, holding.item_id)
    remaining = [
        h
        for h in await holdings.holdings_in_package(holding.account_id, holding.package_id)
        if h.id != holding.id
    ]
    if remaining:
        return
    await shares.delete_shares_to(holding.account_id, holding.package_id)
    if holding.account_id != institution_id:
        await PackageRepository(session).delete_slot(holding.package_id, holding.account_id)


def may_evict(account: AccountInfo, addition: Addition) -> bool:
    """Whether automatic deletion may remove the account's studies for this addition."""
    return (
        addition == "own" and account.deletion_mode == "automatic" and account.role != "institution"
    )


async def make_room(
    session: AsyncSession,
    account: AccountInfo,
    *,
    need: int,
    keep_package: str,
    addition: Addition,
) -> Room:
    """Inside a transaction holding the account's usage lock: ensure ``need`` bytes are
    free, evicting where :func:`may_evict` allows; raises 507 otherwise (and the caller
    rolls back)."""
    repo = HoldingsRepository(session)
    used = await repo.lock_usage(account.id)
    if account.quota_bytes is None:  # no quota: everything fits
        return Room(free=_UNLIMITED)
    reserved = await repo.reserved_bytes(account.id)
    room = Room(free=account.quota_bytes - used - reserved)
    if room.free >= need:
        return room
    if may_evict(account, addition):
        candidates = await repo.evictable_studies(account.id, keep_package=keep_package)
        sizes = await repo.item_sizes(candidates)
        freed = 0
        for holding in candidates:
            if room.free >= need:
                break
            package = await PackageRepository(session).package(holding.package_id)
            institution_id = package.institution_id if package is not None else ""
            await release_holding(session, holding, institution_id=institution_id)
            size = sizes[holding.item_id]
            freed += size
            room.free += size
            room.evicted.append(ItemRef(holding.package_id, "study", holding.item_id))
        await repo.add_usage(account.id, -freed)
    if room.free < need:
        raise InsufficientStorage(
            f"{need} more bytes do not fit: {max(room.free, 0)} of {account.quota_bytes} "
            f"bytes are free ({_remedy(account)})",
            quota_bytes=account.quota_bytes,
            used_bytes=used,
            deletion_mode=account.deletion_mode,
        )
    return room


def _remedy(account: AccountInfo) -> str:
    if account.role == "institution":
        return "the institution's quota is reached; nothing it published is ever deleted for room"
    if account.deletion_mode == "manual":
        return "delete studies or documents, or switch to automatic deletion mode"
    return "even deleting the oldest studies would not make enough room"


async def reserve(
    session: AsyncSession,
    account: AccountInfo,
    *,
    batch_id: str,
    need: int,
    want: int,
    keep_package: str,
) -> tuple[int, list[ItemRef]]:
    """Reserve between ``need`` and ``want`` bytes for an upload batch (in the caller's
    transaction), the part beyond ``need`` only out of half the free room; returns the
    amount reserved and the evicted items to collect after commit."""
    room = await make_room(session, account, need=need, keep_package=keep_package, addition="own")
    # Beyond ``need`` the reservation only saves round trips: it never takes more than
    # half of the room left, which the account's other uploads may need.
    spare = max(0, room.free - need) // 2
    amount = max(need, min(want, need + spare))
    if not await HoldingsRepository(session).add_reservation(batch_id, amount, utcnow()):
        raise UploadExpired("the upload was abandoned by the server (no heartbeat); retry it")
    return amount, room.evicted
