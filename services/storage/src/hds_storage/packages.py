"""Packages: creation and completion by institutions; status, items, downloads, key
export and key-slot import for the other services.

A package is *open* while the institution uploads, and *complete* after an explicit
``complete`` or ``package_idle_timeout_seconds`` without uploads. Consumers (DLX through
a package grant, imports into accounts) see a package only once it is complete; before
that they get 409 ``package-incomplete`` with ``retry_after``.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Sequence

from fastapi.responses import StreamingResponse
from starlette.datastructures import Headers

from hds_common.crypto import b64e, generate_package_key
from hds_common.db import utcnow
from hds_common.errors import Conflict, Forbidden, NotFound, UnprocessableContent
from hds_storage.access import (
    GrantKeys,
    KeyHolder,
    KeyRing,
    load_package,
    open_user_key,
    package_key_from_grant,
)
from hds_storage.delivery import archive_response, object_response
from hds_storage.errors import PackageEmpty, PackageIncomplete
from hds_storage.holdings import add_items, collect_evicted
from hds_storage.index import IndexReader, as_utc
from hds_storage.keys import MetaCipher, open_package_key, seal_slot, user_public_key
from hds_storage.models import Document, KeySlot, Package, Study
from hds_storage.repository import StorageRepository
from hds_storage.schemas import (
    DataItem,
    PackageKeyOut,
    PackagePublic,
    PackageState,
    PackageStatus,
    SlotImport,
    SlotImported,
)
from hds_storage.state import StorageState

__all__ = ["PackageService", "import_slot"]


class PackageService:
    def __init__(self, state: StorageState, repo: StorageRepository) -> None:
        self.state = state
        self.repo = repo

    # -- institution ----------------------------------------------------------------------

    async def create(self, holder: KeyHolder) -> PackagePublic:
        """A new open package with a fresh package key; the institution gets a key slot
        sealed to its own public key straight away."""
        package_id = str(uuid.uuid4())
        package_key = generate_package_key()
        now = utcnow()
        package = Package(
            id=package_id,
            institution_id=holder.account_id,
            state="open",
            key_check=MetaCipher(package_key, package_id).seal("packages", package_id, {}),
            created_at=now,
            last_activity_at=now,
            completed_at=None,
        )
        self.repo.add(package)
        await self.repo.flush()
        self.repo.add(
            KeySlot(
                id=str(uuid.uuid4()),
                package_id=package_id,
                account_id=holder.account_id,
                sealed_key=seal_slot(user_public_key(holder.private_key), package_id, package_key),
                created_at=now,
            )
        )
        await self.repo.flush()
        return _package_out(package)

    async def _own(self, holder: KeyHolder, package_id: str) -> Package:
        package = await self.repo.package(package_id)
        if package is None or package.institution_id != holder.account_id:
            raise NotFound("no such package", slug="package-not-found")
        return await self._settle(package)

    async def _settle(self, package: Package) -> Package:
        """Complete an open package whose idle timeout has passed (without waiting for the
        background pass), so every reader sees the same state."""
        if package.state == "open" and self._idle_seconds_left(package) <= 0:
            now = utcnow()
            idle = dt.timedelta(seconds=self.state.settings.package_idle_timeout_seconds)
            await self.repo.complete_idle_packages(
                now=now, idle_before=now - idle, package_id=package.id
            )
            await self.repo.session.refresh(package)
        return package

    def _idle_seconds_left(self, package: Package) -> float:
        idle = (utcnow() - as_utc(package.last_activity_at)).total_seconds()
        return self.state.settings.package_idle_timeout_seconds - idle

    async def get(self, holder: KeyHolder, package_id: str) -> PackagePublic:
        package = await self._own(holder, package_id)
        return (await self._describe(holder, [package]))[0]

    async def list_own(self, holder: KeyHolder) -> list[PackagePublic]:
        packages = [
            await self._settle(p)
            for p in await self.repo.packages_of_institution(holder.account_id)
        ]
        return await self._describe(holder, packages)

    async def _describe(
        self, holder: KeyHolder, packages: Sequence[Package]
    ) -> list[PackagePublic]:
        keys = KeyRing(self.repo, holder)
        reader = IndexReader(self.repo, keys)
        views = []
        for package in packages:
            view = _package_out(package)
            patient = await self.repo.patient_of_package(package.id)
            if patient is not None:
                await keys.load([package.id])
                view.patient = reader.patient(patient)
            studies = await self.repo.studies_of_package(package.id)
            documents = await self.repo.documents_of_package(package.id)
            totals = await self.repo.study_totals(s.id for s in studies)
            view.studies = len(studies)
            view.documents = len(documents)
            view.size = sum(size for _, size in totals.values()) + sum(d.size for d in documents)
            views.append(view)
        return views

    async def complete(self, holder: KeyHolder, package_id: str) -> PackagePublic:
        package = await self._own(holder, package_id)
        if package.state == "open":
            if await self.repo.packages_with_batches([package.id]):
                raise Conflict(
                    "uploads into this package are still running", slug="upload-in-progress"
                )
            await self.repo.complete_package(package.id, utcnow())
            await self.repo.flush()
            await self.repo.session.refresh(package)
        return (await self._describe(holder, [package]))[0]

    # -- consumers (internal) ----------------------------------------------------------------

    async def status(self, package_id: str) -> PackageStatus:
        package = await self._settle(await load_package(self.repo, package_id))
        return PackageStatus(
            id=package.id,
            state=_state(package),
            institution_id=package.institution_id,
            retry_after=self._retry_after(package),
        )

    def _retry_after(self, package: Package) -> int:
        if package.state == "complete":
            return 0
        return max(1, min(60, math.ceil(self._idle_seconds_left(package))))

    async def require_complete(self, package_id: str) -> Package:
        package = await self._settle(await load_package(self.repo, package_id))
        if package.state != "complete":
            raise PackageIncomplete(self._retry_after(package))
        return package

    async def items(self, package_id: str, grant: str | None) -> list[DataItem]:
        package = await self.require_complete(package_id)
        keys = GrantKeys(package.id, await package_key_from_grant(self.state, package, grant))
        reader = IndexReader(self.repo, keys)
        return await reader.data_items(
            await self.repo.studies_of_package(package.id),
            await self.repo.documents_of_package(package.id),
        )

    async def archive(
        self, package_id: str, grant: str | None, item_ids: list[str], headers: Headers
    ) -> StreamingResponse:
        package = await self.require_complete(package_id)
        package_key = await package_key_from_grant(self.state, package, grant)
        studies: list[Study] = await self.repo.studies_of_package(package.id)
        documents: list[Document] = await self.repo.documents_of_package(package.id)
        if item_ids:
            wanted: set[str] = set(item_ids)
            known = {s.id for s in studies} | {d.id for d in documents}
            unknown = sorted(wanted - known)
            if unknown:
                raise NotFound("no such item in this package", slug="item-not-found", items=unknown)
            studies = [s for s in studies if s.id in wanted]
            documents = [d for d in documents if d.id in wanted]
        if not studies and not documents:
            raise PackageEmpty()
        reader = IndexReader(self.repo, GrantKeys(package.id, package_key))
        content = await reader.archive_content(studies, documents)
        name = item_ids[0] if len(item_ids) == 1 else package.id
        return await archive_response(
            self.state.store,
            {package.id: package_key},
            content,
            self.state.plans,
            filename=f"{name}.zip",
            request_headers=headers,
        )

    async def document(
        self, package_id: str, document_id: str, grant: str | None, headers: Headers
    ) -> StreamingResponse:
        package = await self.require_complete(package_id)
        package_key = await package_key_from_grant(self.state, package, grant)
        document = await self.repo.document(document_id)
        if document is None or document.package_id != package.id:
            raise NotFound("no such document in this package", slug="item-not-found")
        return await object_response(
            self.state.store,
            package_key,
            document,
            media_type="application/pdf",
            request_headers=headers,
        )

    async def export_key(self, package_id: str, user_grant: str | None) -> PackageKeyOut:
        """The package key, for the publishing institution (codes wraps it into a code
        slot). The grant must be the institution's own user grant."""
        package = await load_package(self.repo, package_id)
        if user_grant is None:
            raise Forbidden("user grant required (X-HDS-Grant)", slug="grant-required")
        key = await open_user_key(self.state, user_grant, account_id=package.institution_id)
        holder = KeyHolder(package.institution_id, ("institution",), key)
        package_key = await KeyRing(self.repo, holder).key(package.id)
        return PackageKeyOut(package_key=b64e(package_key))


async def import_slot(state: StorageState, package_id: str, body: SlotImport) -> SlotImported:
    """Give an account a key slot on a complete package and all its items in its holdings,
    within its quota (an import is the account's own addition: automatic mode evicts its
    oldest studies, manual mode answers 507)."""
    async with state.session_maker() as session:
        repo = StorageRepository(session)
        package = await PackageService(state, repo).require_complete(package_id)
        package_key = open_package_key(state.grant_key, package, body.sealed_package_key)
        await session.commit()
    account = await state.identity.account(body.account_id)
    public_key = account.public_key_bytes()
    if public_key is None:
        raise UnprocessableContent(
            "the account has no key pair to seal the package key to", slug="account-without-key"
        )
    async with state.session_maker() as session, session.begin():
        repo = StorageRepository(session)
        if await repo.lock_package(package_id) is None:
            raise NotFound("no such package", slug="package-not-found")
        studies = await repo.studies_of_package(package_id)
        documents = await repo.documents_of_package(package_id)
        if not studies and not documents:
            raise PackageEmpty()
        added, room = await add_items(
            repo,
            account,
            package_id=package_id,
            sealed_key=seal_slot(public_key, package_id, package_key),
            items=[("study", s.id) for s in studies] + [("document", d.id) for d in documents],
            addition="own",
        )
        # Items someone shared with the account are now its own: revoking that share
        # no longer removes them.
        await repo.claim_holdings(account.id, package_id)
    await collect_evicted(state, room)
    return SlotImported(
        package_id=package_id, studies=len(studies), documents=len(documents), bytes=added
    )


def _state(package: Package) -> PackageState:
    return "complete" if package.state == "complete" else "open"


def _package_out(package: Package) -> PackagePublic:
    return PackagePublic(
        id=package.id,
        state=_state(package),
        institution_id=package.institution_id,
        created_at=as_utc(package.created_at),
        last_activity_at=as_utc(package.last_activity_at),
        completed_at=as_utc(package.completed_at) if package.completed_at else None,
    )
