"""Quota: plaintext bytes of an account's holdings against the quota the identity service
sets (default 1 GiB, per-account override).

Invariant, kept under any concurrency: ``used + reserved <= quota`` whenever something
is added, where ``reserved`` is the sum over the account's uploads in flight. Uploads
reserve before their bytes are stored (in one transaction holding the account's usage
lock), and turn the reservation into usage when they commit; a failed upload drops its
reservation, a crashed one loses it to the sweep. Automatic deletion mode makes room by
removing the account's oldest whole studies (never documents, never studies of a package
still being published, never items of the package being added to); manual mode, or
automatic mode when even that is not enough, answers 507 and removes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hds_common.db import utcnow
from hds_common.errors import InsufficientStorage, ServiceUnavailable
from hds_storage.collector import ItemRef
from hds_storage.identity import AccountInfo
from hds_storage.models import Holding
from hds_storage.repository import StorageRepository

__all__ = ["Room", "make_room", "release_holding", "reserve"]


@dataclass
class Room:
    """The outcome of :func:`make_room`: bytes free now, items removed to get there."""

    free: int
    evicted: list[ItemRef] = field(default_factory=list)


async def release_holding(
    repo: StorageRepository, holding: Holding, *, institution_id: str
) -> None:
    """Remove one holding and the shares that gave the account this item; once it holds
    nothing more of the package, also the package's shares to it and its key slot (the
    publishing institution keeps its slot: it reissues codes with it)."""
    await repo.delete_holding(holding.id)
    await repo.delete_shares_to(holding.account_id, holding.item_id)
    remaining = [
        h
        for h in await repo.holdings_in_package(holding.account_id, holding.package_id)
        if h.id != holding.id
    ]
    if remaining:
        return
    await repo.delete_shares_to(holding.account_id, holding.package_id)
    if holding.account_id != institution_id:
        await repo.delete_slot(holding.package_id, holding.account_id)


async def make_room(
    repo: StorageRepository,
    account: AccountInfo,
    *,
    need: int,
    keep_package: str,
) -> Room:
    """Inside a transaction holding the account's usage lock: ensure ``need`` bytes are
    free, evicting in automatic mode; raises 507 otherwise (and the caller rolls back)."""
    used = await repo.lock_usage(account.id)
    reserved = await repo.reserved_bytes(account.id)
    room = Room(free=account.quota_bytes - used - reserved)
    if room.free >= need:
        return room
    if account.deletion_mode == "automatic":
        candidates = await repo.evictable_studies(account.id, keep_package=keep_package)
        sizes = await repo.item_sizes(candidates)
        freed = 0
        for holding in candidates:
            if room.free >= need:
                break
            package = await repo.package(holding.package_id)
            institution_id = package.institution_id if package is not None else ""
            await release_holding(repo, holding, institution_id=institution_id)
            size = sizes[holding.item_id]
            freed += size
            room.free += size
            room.evicted.append(ItemRef(holding.package_id, "study", holding.item_id))
        await repo.add_usage(account.id, -freed)
    if room.free < need:
        raise InsufficientStorage(
            f"{need} more bytes do not fit: {max(room.free, 0)} of {account.quota_bytes} "
            "bytes are free",
            quota_bytes=account.quota_bytes,
            used_bytes=used,
            deletion_mode=account.deletion_mode,
        )
    return room


async def reserve(
    repo: StorageRepository,
    account: AccountInfo,
    *,
    batch_id: str,
    need: int,
    want: int,
    keep_package: str,
) -> tuple[int, list[ItemRef]]:
    """Reserve between ``need`` and ``want`` bytes for an upload batch (in the caller's
    transaction); returns the amount reserved and the evicted items to collect after
    commit."""
    room = await make_room(repo, account, need=need, keep_package=keep_package)
    amount = max(need, min(want, room.free))
    if not await repo.add_reservation(batch_id, amount, utcnow()):
        raise ServiceUnavailable(
            "the upload was abandoned by the server (no heartbeat); retry it",
            slug="upload-expired",
        )
    return amount, room.evicted
