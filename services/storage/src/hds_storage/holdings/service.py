"""An account's holdings: what it may list, download and delete, and how items get there.

Holdings are whole studies and documents. An account reaches them through its key slots;
deleting removes the account's holding (never a single instance) and, once nobody holds
an item any more, its rows and blobs. Items come by upload (the institution), by code
import and by share, and are counted against the receiving account's quota.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import structlog
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers

from hds_common.db import utcnow
from hds_storage.clients.identity import AccountInfo
from hds_storage.downloads.index import IndexReader
from hds_storage.downloads.repository import IndexRepository
from hds_storage.downloads.responses import archive_response, object_response
from hds_storage.errors import AccountNotFound, ObjectNotFound, StudyNotFound, not_held
from hds_storage.holdings.quota import Addition, Room, make_room, release_holding
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.holdings.schemas import (
    DocumentPublic,
    PatientHoldings,
    StudyDetail,
    StudyPublic,
    UsagePublic,
)
from hds_storage.keyring import KeyHolder, KeyRing
from hds_storage.maintenance.collector import (
    ItemRef,
    collect_items,
    delete_blobs,
    remove_unheld_item,
)
from hds_storage.models import Document, Holding, Instance, KeySlot, Study
from hds_storage.packages.repository import PackageRepository
from hds_storage.runtime import Runtime
from hds_storage.schemas import ItemKind
from hds_storage.transactions import workflow_transaction

__all__ = [
    "HoldingsService",
    "add_items",
    "collect_evicted",
    "delete_item",
    "holding_row",
    "new_holdings",
    "used_bytes",
]

log = structlog.get_logger("hds.storage.holdings")

HeldRow = TypeVar("HeldRow", Study, Document)
View = TypeVar("View", StudyPublic, DocumentPublic)


def _added_at(holdings: list[Holding]) -> dict[str, dt.datetime]:
    return {h.item_id: h.created_at for h in holdings}


class HoldingsService:
    """What an account reads of its holdings, in the request's session."""

    def __init__(self, runtime: Runtime, session: AsyncSession) -> None:
        self.runtime = runtime
        self.session = session
        self.holdings = HoldingsRepository(session)
        self.index = IndexRepository(session)

    def _reader(self, holder: KeyHolder) -> tuple[IndexReader, KeyRing]:
        keys = KeyRing(self.session, holder)
        return IndexReader(self.index, keys), keys

    async def _holding(self, holder: KeyHolder, item_id: str, kind: str) -> Holding:
        holding = await self.holdings.holding(holder.account_id, item_id)
        if holding is None or holding.item_kind != kind:
            raise not_held(kind)
        return holding

    async def _held_items(
        self,
        holder: KeyHolder,
        kind: ItemKind,
        patient: str | None,
        load: Callable[[Iterable[str]], Awaitable[list[HeldRow]]],
        read: Callable[[IndexReader, list[HeldRow], dict[str, dt.datetime]], Awaitable[list[View]]],
    ) -> list[View]:
        """The account's items of one kind (of one patient, if given), oldest holding first."""
        holdings = await self.holdings.holdings(holder.account_id, kind=kind)
        rows = await load(h.item_id for h in holdings)
        if patient is not None:
            rows = [row for row in rows if row.patient_id == patient]
        reader, _ = self._reader(holder)
        views = await read(reader, rows, _added_at(holdings))
        return sorted(views, key=lambda view: (view.added_at, view.id))

    async def studies(self, holder: KeyHolder, *, patient: str | None = None) -> list[StudyPublic]:
        return await self._held_items(
            holder, "study", patient, self.index.studies, IndexReader.studies
        )

    async def study(self, holder: KeyHolder, study_id: str) -> StudyDetail:
        holding = await self._holding(holder, study_id, "study")
        study = await self.index.study(study_id)
        if study is None:
            raise StudyNotFound("no such study in your holdings")
        reader, _ = self._reader(holder)
        return await reader.study_detail(study, holding.created_at)

    async def documents(
        self, holder: KeyHolder, *, patient: str | None = None
    ) -> list[DocumentPublic]:
        return await self._held_items(
            holder, "document", patient, self.index.documents, IndexReader.documents
        )

    async def patients(self, holder: KeyHolder) -> list[PatientHoldings]:
        holdings = await self.holdings.holdings(holder.account_id)
        studies = await self.index.studies(h.item_id for h in holdings if h.item_kind == "study")
        documents = await self.index.documents(
            h.item_id for h in holdings if h.item_kind == "document"
        )
        study_ids: dict[str, list[str]] = defaultdict(list)
        document_ids: dict[str, list[str]] = defaultdict(list)
        for study in studies:
            study_ids[study.patient_id].append(study.id)
        for document in documents:
            document_ids[document.patient_id].append(document.id)
        reader, _ = self._reader(holder)
        patients = await reader.patients(set(study_ids) | set(document_ids))
        views = [
            PatientHoldings(
                **patient.model_dump(),
                study_ids=sorted(study_ids[patient_row_id]),
                document_ids=sorted(document_ids[patient_row_id]),
            )
            for patient_row_id, patient in patients.items()
        ]
        return sorted(views, key=lambda p: (p.name, p.patient_id, p.id))

    async def object(
        self, holder: KeyHolder, object_id: str, headers: Headers
    ) -> StreamingResponse:
        """One decrypted object (instance or document) of an item the account holds."""
        target: Instance | Document | None = await self.index.instance(object_id)
        if isinstance(target, Instance):
            item_id, media_type = target.study_id, "application/dicom"
        else:
            target = await self.index.document(object_id)
            item_id, media_type = object_id, "application/pdf"
        if target is None or await self.holdings.holding(holder.account_id, item_id) is None:
            raise ObjectNotFound("no such object in your holdings")
        _, keys = self._reader(holder)
        return await object_response(
            self.runtime.store,
            await keys.key(target.package_id),
            target,
            media_type=media_type,
            request_headers=headers,
        )

    async def study_archive(
        self, holder: KeyHolder, study_id: str, headers: Headers
    ) -> StreamingResponse:
        await self._holding(holder, study_id, "study")
        study = await self.index.study(study_id)
        if study is None:
            raise StudyNotFound("no such study in your holdings")
        reader, keys = self._reader(holder)
        content = await reader.archive_content([study], [])
        return await archive_response(
            self.runtime.store,
            {study.package_id: await keys.key(study.package_id)},
            content,
            self.runtime.plans,
            filename=f"study-{study.id}.zip",
            request_headers=headers,
        )

    async def usage(self, account_id: str) -> UsagePublic:
        account = await self.runtime.identity.account(account_id)
        return UsagePublic(
            used_bytes=await self.holdings.used_bytes(account_id),
            reserved_bytes=await self.holdings.reserved_bytes(account_id),
            quota_bytes=account.quota_bytes,
            deletion_mode=account.deletion_mode,
        )


async def used_bytes(session: AsyncSession, account_id: str) -> int:
    """Plaintext bytes the account's holdings count against its quota (storage's own
    record: the quota itself is the identity service's). Account ids are UUIDs (the
    identity service makes them): any other id names no account."""
    try:
        uuid.UUID(account_id)
    except ValueError:
        raise AccountNotFound("unknown account") from None
    return await HoldingsRepository(session).used_bytes(account_id)


async def delete_item(runtime: Runtime, account_id: str, item_id: str, kind: str) -> None:
    """Remove an item from an account's holdings; rows and blobs go once nobody holds it."""
    async with workflow_transaction(runtime.session_maker) as session:
        repo = HoldingsRepository(session)
        holding = await repo.holding(account_id, item_id)
        if holding is None or holding.item_kind != kind:
            raise not_held(kind)
        package = await PackageRepository(session).lock_package(holding.package_id)
        await repo.lock_usage(account_id)
        # Re-read under the locks: a concurrent delete may have won.
        holding = await repo.holding(account_id, item_id)
        if holding is None or package is None:
            raise not_held(kind)
        size = (await repo.item_sizes([holding]))[item_id]
        await release_holding(session, holding, institution_id=package.institution_id)
        await repo.add_usage(account_id, -size)
        keys = await remove_unheld_item(session, ItemRef(holding.package_id, kind, item_id))
    await delete_blobs(runtime.store, keys)


async def add_items(
    session: AsyncSession,
    account: AccountInfo,
    *,
    package_id: str,
    sealed_key: bytes,
    items: Sequence[tuple[str, str]],
    addition: Addition,
    share_id: str | None = None,
) -> tuple[int, Room]:
    """Inside a transaction holding the package lock: put the ``(kind, item id)`` items
    the account does not hold yet into its holdings (as given by ``share_id``, if any),
    within its quota (see :mod:`hds_storage.holdings.quota` for what may be evicted), and give it
    a key slot on the package if it has none. Returns the bytes newly counted and the
    room made (evicted items are collected after commit). ``sealed_key`` is the package
    key sealed to the account (:func:`hds_storage.keys.seal_slot`)."""
    now = utcnow()
    repo = HoldingsRepository(session)
    new = await new_holdings(repo, account.id, package_id, items, share_id=share_id, now=now)
    added = sum((await repo.item_sizes(new)).values())
    room = await make_room(session, account, need=added, keep_package=package_id, addition=addition)
    if await PackageRepository(session).slot(package_id, account.id) is None:
        repo.add(
            KeySlot(
                id=str(uuid.uuid4()),
                package_id=package_id,
                account_id=account.id,
                sealed_key=sealed_key,
                created_at=now,
            )
        )
    for holding in new:
        repo.add(holding)
    await repo.flush()
    await repo.add_usage(account.id, added)
    return added, room


async def new_holdings(
    repo: HoldingsRepository,
    account_id: str,
    package_id: str,
    items: Sequence[tuple[str, str]],
    *,
    share_id: str | None,
    now: dt.datetime,
) -> list[Holding]:
    """Holdings (not added yet) for the items of the package the account does not hold."""
    held = {h.item_id for h in await repo.holdings_in_package(account_id, package_id)}
    return [
        holding_row(account_id, package_id, kind, item_id, now, share_id=share_id)
        for kind, item_id in items
        if item_id not in held
    ]


def holding_row(
    account_id: str,
    package_id: str,
    kind: str,
    item_id: str,
    now: dt.datetime,
    *,
    share_id: str | None = None,
) -> Holding:
    """A new holding of one item (given by the share ``share_id``, if any)."""
    return Holding(
        id=str(uuid.uuid4()),
        account_id=account_id,
        package_id=package_id,
        item_kind=kind,
        item_id=item_id,
        share_id=share_id,
        created_at=now,
    )


async def collect_evicted(runtime: Runtime, room: Room) -> None:
    """After the commit that added items: remove what automatic deletion evicted to make
    room, if nobody else holds it."""
    if not room.evicted:
        return
    try:
        await collect_items(runtime.session_maker, runtime.store, room.evicted)
    except Exception as exc:  # the items are added; maintenance collects the rest later
        log.warning("evicted_items_not_collected", error=f"{type(exc).__name__}: {exc}")
