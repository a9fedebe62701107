"""Shares: an account gives another account a study or a document it holds; an
institution delivers a whole published package (to a referrer, or any account).

No key leaves storage: the package key is opened with the sharer's grant (its key slot)
and sealed to the recipient's public key, a key slot like an import's. The recipient gets
the items in its holdings, counted against its own quota. A share never deletes anything
of the recipient, whatever its deletion mode (automatic deletion makes room only for what
the account adds itself): one that does not fit is recorded as ``waiting``, with the
package key already sealed to the recipient, and listed for it until it makes room and
accepts (tried again after each of its deletions) or declines. Accounts accept shares
only once their holder turned that on; an unknown recipient, an inactive one and one that
does not accept shares get one and the same 404 ``recipient-not-found``, so sharing cannot
tell anyone which addresses have an account.

Revoking (by the sharer, or by the recipient) removes the recipient's holdings that came
with the share, unless another share still gives them; what the recipient got by itself
(a code import) is never taken away.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_common.db import utcnow
from hds_common.errors import InsufficientStorage, NotFound, ProblemError
from hds_common.row_views import view_of
from hds_storage.clients.identity import AccountInfo
from hds_storage.downloads.repository import IndexRepository
from hds_storage.errors import (
    PackageEmpty,
    PackageNotFound,
    RecipientNotFound,
    ShareGone,
    ShareNotFound,
    ShareWithSelf,
    not_held,
)
from hds_storage.holdings.quota import release_holding
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.holdings.service import add_items
from hds_storage.keyring import KeyHolder, KeyRing
from hds_storage.keys import seal_slot
from hds_storage.maintenance.collector import ItemRef, delete_blobs, remove_unheld_item
from hds_storage.models import Holding, Share
from hds_storage.packages.repository import PackageRepository
from hds_storage.packages.service import PackageService
from hds_storage.runtime import Runtime
from hds_storage.schemas import ItemKind, ShareKind
from hds_storage.shares.repository import ShareRepository
from hds_storage.shares.schemas import SharePublic, SharesPublic
from hds_storage.transactions import workflow_transaction

__all__ = ["ShareService"]

log = structlog.get_logger("hds.storage.shares")

# The mail says that something arrived, never what: no patient data leaves storage.
_MAIL_SUBJECT = "Something was shared with you"
_MAIL_TEXT: dict[ShareKind, str] = {
    "study": "Another account shared a study with you. Log in to find it among your studies.",
    "document": "Another account shared a document with you. Log in to find it among "
    "your documents.",
    "package": "An institution delivered results to you. Log in to find them among your "
    "studies and documents.",
}
_WAITING_SUBJECT = "Something shared with you is waiting for room"
_WAITING_TEXT = (
    "Another account shared something with you that does not fit in your storage. Nothing "
    "of yours was deleted for it. Log in to make room and accept it, or to decline it."
)


def _recipient_not_found() -> RecipientNotFound:
    return RecipientNotFound("no account with this address or id receives shares")


def _share_out(share: Share, size: int) -> SharePublic:
    return view_of(SharePublic, share, size_bytes=size)


async def _shares_out(session: AsyncSession, shares: list[Share]) -> list[SharePublic]:
    sizes = await ShareRepository(session).share_sizes(shares)
    return [_share_out(share, sizes.get(share.id, 0)) for share in shares]


def _share_not_found() -> ShareNotFound:
    return ShareNotFound("no such share")


async def _package_items(session: AsyncSession, package_id: str) -> list[tuple[str, str]]:
    items = [("study", s.id) for s in await IndexRepository(session).studies_of_package(package_id)]
    return items + [
        ("document", d.id) for d in await IndexRepository(session).documents_of_package(package_id)
    ]


async def _share_items(session: AsyncSession, share: Share) -> list[tuple[str, str]]:
    """What the share gives, as far as it still exists."""
    if share.item_kind == "package":
        return await _package_items(session, share.package_id)
    if share.item_kind == "study":
        return (
            [("study", share.item_id)]
            if await IndexRepository(session).study(share.item_id)
            else []
        )
    return (
        [("document", share.item_id)]
        if await IndexRepository(session).document(share.item_id)
        else []
    )


@dataclass(frozen=True)
class _Offer:
    """What a sharer gives: an item, or a whole package (whose item id is its own id)."""

    package_id: str
    package_key: bytes = field(repr=False)
    kind: ShareKind
    item_id: str


class ShareService:
    """Shares: each step a workflow transaction of its own (the recipient is looked up at
    the identity service between them, and notified after the commit)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def share_item(
        self, holder: KeyHolder, kind: ItemKind, item_id: str, recipient: str
    ) -> tuple[SharePublic, bool]:
        """Share a study or document the caller holds; True when the share is new."""
        async with workflow_transaction(self.runtime.session_maker) as session:
            holding = await HoldingsRepository(session).holding(holder.account_id, item_id)
            if holding is None or holding.item_kind != kind:
                raise not_held(kind)
            package = await PackageService(self.runtime, session).require_complete(
                holding.package_id
            )
            package_key = await KeyRing(session, holder).key(package.id)
        return await self._give(holder, _Offer(package.id, package_key, kind, item_id), recipient)

    async def share_package(
        self, holder: KeyHolder, package_id: str, recipient: str
    ) -> tuple[SharePublic, bool]:
        """Deliver a complete package of the calling institution; True when new."""
        async with workflow_transaction(self.runtime.session_maker) as session:
            package = await PackageRepository(session).package(package_id)
            if package is None or package.institution_id != holder.account_id:
                raise PackageNotFound("no such package")
            await PackageService(self.runtime, session).require_complete(package.id)
            # The institution's own key slot, kept for as long as the package exists.
            package_key = await KeyRing(session, holder).key(package.id)
        offer = _Offer(package.id, package_key, "package", package.id)
        return await self._give(holder, offer, recipient)

    async def _recipient(self, sharer_id: str, recipient: str) -> tuple[AccountInfo, bytes]:
        identity = self.runtime.identity
        try:
            if "@" in recipient:
                account = await identity.account_by_email(recipient)
            else:
                account = await identity.account(str(uuid.UUID(recipient)))
        except (NotFound, ValueError):
            raise _recipient_not_found() from None
        if account.id == sharer_id:
            raise ShareWithSelf("you cannot share with yourself")
        public_key = account.public_key_bytes()
        if not account.active or not account.accept_shares or public_key is None:
            raise _recipient_not_found()
        return account, public_key

    async def _offered_items(
        self, session: AsyncSession, sharer_id: str, offer: _Offer
    ) -> list[tuple[str, str]]:
        """The ``(kind, item id)`` pairs of the offer, read under the package lock."""
        if offer.kind == "package":
            items = await _package_items(session, offer.package_id)
            if not items:
                raise PackageEmpty()
            return items
        # The sharer may have deleted the item since it was checked.
        if await HoldingsRepository(session).holding(sharer_id, offer.item_id) is None:
            raise not_held(offer.kind)
        return [(offer.kind, offer.item_id)]

    async def _give(
        self, holder: KeyHolder, offer: _Offer, recipient_text: str
    ) -> tuple[SharePublic, bool]:
        recipient, public_key = await self._recipient(holder.account_id, recipient_text)
        sealed_key = seal_slot(public_key, offer.package_id, offer.package_key)
        async with workflow_transaction(self.runtime.session_maker) as session:
            if await PackageRepository(session).lock_package(offer.package_id) is None:
                raise PackageNotFound("no such package")
            items = await self._offered_items(session, holder.account_id, offer)
            existing = await ShareRepository(session).share_between(
                holder.account_id, recipient.id, offer.item_id
            )
            if existing is not None:
                return (await _shares_out(session, [existing]))[0], False
            share = Share(
                id=str(uuid.uuid4()),
                package_id=offer.package_id,
                item_kind=offer.kind,
                item_id=offer.item_id,
                from_account_id=holder.account_id,
                to_account_id=recipient.id,
                state="active",
                created_at=utcnow(),
            )
            session.add(share)
            await session.flush()
            try:
                # A pushed addition: make_room never deletes anything of the recipient.
                await add_items(
                    session,
                    recipient,
                    package_id=offer.package_id,
                    sealed_key=sealed_key,
                    items=items,
                    addition="pushed",
                    share_id=share.id,
                )
            except InsufficientStorage:
                share.state = "waiting"
                share.sealed_key = sealed_key
                await session.flush()
            out = (await _shares_out(session, [share]))[0]
        if share.state == "waiting":
            await self.runtime.identity.notify(
                recipient.id, subject=_WAITING_SUBJECT, text=_WAITING_TEXT
            )
        else:
            await self.runtime.identity.notify(
                recipient.id, subject=_MAIL_SUBJECT, text=_MAIL_TEXT[offer.kind]
            )
        return out, True

    async def accept(self, account_id: str, share_id: str) -> SharePublic:
        """The recipient takes a waiting share into its holdings; 507 while it does not
        fit (nothing of the recipient is deleted for it), 404 once what it gave is gone."""
        account = await self.runtime.identity.account(account_id)
        async with workflow_transaction(self.runtime.session_maker) as session:
            share_repo = ShareRepository(session)
            share = await share_repo.share(share_id)
            if share is None or share.to_account_id != account_id:
                raise _share_not_found()
            if share.state == "active":
                return (await _shares_out(session, [share]))[0]
            if await PackageRepository(session).lock_package(share.package_id) is None:
                raise _share_not_found()
            share = await share_repo.share(share_id)  # re-read under the lock
            if share is None:
                raise _share_not_found()
            await self._take(session, account, share)
            return (await _shares_out(session, [share]))[0]

    async def _take(self, session: AsyncSession, account: AccountInfo, share: Share) -> None:
        """Under the package lock: turn a waiting share into holdings, or raise 507 (or
        404 after removing a share whose items no longer exist)."""
        assert share.sealed_key is not None
        items = await _share_items(session, share)
        if not items:
            await ShareRepository(session).delete_share(share.id)
            raise ShareGone("what was shared no longer exists; the share is removed")
        await add_items(
            session,
            account,
            package_id=share.package_id,
            sealed_key=share.sealed_key,
            items=items,
            addition="pushed",
            share_id=share.id,
        )
        share.state = "active"
        share.sealed_key = None
        await session.flush()

    async def accept_waiting(self, account_id: str) -> int:
        """After the account made room: accept its waiting shares, oldest first, as long
        as they fit. Best effort (the shares keep waiting on any failure); returns how
        many were accepted."""
        accepted = 0
        async with workflow_transaction(self.runtime.session_maker) as session:
            waiting = [
                s.id
                for s in await ShareRepository(session).shares_to(account_id)
                if s.state == "waiting"
            ]
        if not waiting:
            return 0
        try:
            account = await self.runtime.identity.account(account_id)
        except ProblemError:
            return 0
        for share_id in waiting:
            try:
                async with workflow_transaction(self.runtime.session_maker) as session:
                    share = await ShareRepository(session).share(share_id)
                    if share is None or share.state != "waiting":
                        continue
                    if await PackageRepository(session).lock_package(share.package_id) is None:
                        continue
                    await self._take(session, account, share)
                accepted += 1
            except (InsufficientStorage, NotFound):
                continue
        if accepted:
            log.info("waiting_shares_accepted", account_id=account_id, count=accepted)
        return accepted

    async def shares(self, account_id: str) -> SharesPublic:
        async with workflow_transaction(self.runtime.session_maker) as session:
            share_repo = ShareRepository(session)
            return SharesPublic(
                outgoing=await _shares_out(session, await share_repo.shares_from(account_id)),
                incoming=await _shares_out(session, await share_repo.shares_to(account_id)),
            )

    async def revoke(self, account_id: str, share_id: str) -> None:
        """End a share (the sharer or the recipient): the recipient loses the holdings
        that came with it and no other share gives it, and their quota."""
        async with workflow_transaction(self.runtime.session_maker) as session:
            share_repo = ShareRepository(session)
            holding_repo = HoldingsRepository(session)
            share = await share_repo.share(share_id)
            if share is None or account_id not in (share.from_account_id, share.to_account_id):
                raise _share_not_found()
            package = await PackageRepository(session).lock_package(share.package_id)
            await holding_repo.lock_usage(share.to_account_id)
            # Re-read under the locks: a concurrent revoke or delete may have won.
            share = await share_repo.share(share_id)
            if share is None or package is None:
                raise _share_not_found()
            released: list[Holding] = []
            for holding in await holding_repo.holdings_of_share(share.id):
                other = await share_repo.covering_share(holding, besides=share.id)
                if other is None:
                    released.append(holding)
                else:
                    await holding_repo.set_holding_share(holding.id, other.id)
            sizes = await holding_repo.item_sizes(released)
            await share_repo.delete_share(share.id)
            for holding in released:
                await release_holding(session, holding, institution_id=package.institution_id)
            await holding_repo.add_usage(share.to_account_id, -sum(sizes.values()))
            keys: list[str] = []
            for holding in released:
                item = ItemRef(holding.package_id, holding.item_kind, holding.item_id)
                keys += await remove_unheld_item(session, item)
        await delete_blobs(self.runtime.store, keys)
