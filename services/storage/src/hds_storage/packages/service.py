"""Packages: creation and completion by institutions; status, key export and key-slot
import for the other services (their downloads: :mod:`hds_storage.downloads.service`).

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

from sqlalchemy.ext.asyncio import AsyncSession

from hds_common.crypto import b64e, generate_package_key
from hds_common.db import utcnow
from hds_common.row_views import view_of
from hds_storage.downloads.index import IndexReader
from hds_storage.downloads.repository import IndexRepository
from hds_storage.errors import (
    AccountWithoutKey,
    GrantRequired,
    PackageEmpty,
    PackageIncomplete,
    PackageNotFound,
    UploadInProgress,
)
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.holdings.service import add_items, collect_evicted
from hds_storage.ingest.repository import IngestRepository
from hds_storage.keyring import KeyHolder, KeyRing, open_user_key
from hds_storage.keys import MetaCipher, open_package_key, seal_slot, user_public_key
from hds_storage.models import KeySlot, Package
from hds_storage.packages.repository import PackageRepository
from hds_storage.packages.schemas import (
    PackageKeyOut,
    PackagePublic,
    PackageStatus,
    SlotImport,
    SlotImported,
)
from hds_storage.runtime import Runtime
from hds_storage.schemas import PackageState, as_utc
from hds_storage.transactions import workflow_transaction

__all__ = ["PackageService", "import_slot", "load_package"]


async def load_package(session: AsyncSession, package_id: str) -> Package:
    package = await PackageRepository(session).package(package_id)
    if package is None:
        raise PackageNotFound("no such package")
    return package


class PackageService:
    """Packages in the caller's session: the request's, or a workflow step's."""

    def __init__(self, runtime: Runtime, session: AsyncSession) -> None:
        self.runtime = runtime
        self.session = session
        self.repo = PackageRepository(session)
        self.index = IndexRepository(session)

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
            raise PackageNotFound("no such package")
        return await self._settle(package)

    async def _settle(self, package: Package) -> Package:
        """Complete an open package whose idle timeout has passed (without waiting for the
        background pass), so every reader sees the same state."""
        if package.state == "open" and self._idle_seconds_left(package) <= 0:
            now = utcnow()
            idle = dt.timedelta(seconds=self.runtime.settings.package_idle_timeout_seconds)
            await self.repo.complete_idle_packages(
                now=now, idle_before=now - idle, package_id=package.id
            )
            await self.session.refresh(package)
        return package

    def _idle_seconds_left(self, package: Package) -> float:
        idle = (utcnow() - as_utc(package.last_activity_at)).total_seconds()
        return self.runtime.settings.package_idle_timeout_seconds - idle

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
        keys = KeyRing(self.session, holder)
        reader = IndexReader(self.index, keys)
        views = []
        for package in packages:
            view = _package_out(package)
            patient = await self.index.patient_of_package(package.id)
            if patient is not None:
                await keys.load([package.id])
                view.patient = reader.patient(patient)
            studies = await self.index.studies_of_package(package.id)
            documents = await self.index.documents_of_package(package.id)
            totals = await self.index.study_totals(s.id for s in studies)
            view.studies = len(studies)
            view.documents = len(documents)
            view.size = sum(size for _, size in totals.values()) + sum(d.size for d in documents)
            views.append(view)
        return views

    async def complete(self, holder: KeyHolder, package_id: str) -> PackagePublic:
        package = await self._own(holder, package_id)
        if package.state == "open":
            if await IngestRepository(self.session).packages_with_batches([package.id]):
                raise UploadInProgress("uploads into this package are still running")
            await self.repo.complete_package(package.id, utcnow())
            await self.repo.flush()
            await self.session.refresh(package)
        return (await self._describe(holder, [package]))[0]

    # -- consumers (internal) ----------------------------------------------------------------

    async def status(self, package_id: str) -> PackageStatus:
        package = await self._settle(await load_package(self.session, package_id))
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
        package = await self._settle(await load_package(self.session, package_id))
        if package.state != "complete":
            raise PackageIncomplete(self._retry_after(package))
        return package

    async def export_key(self, package_id: str, user_grant: str | None) -> PackageKeyOut:
        """The package key, for the publishing institution (codes wraps it into a code
        slot). The grant must be the institution's own user grant."""
        package = await load_package(self.session, package_id)
        if user_grant is None:
            raise GrantRequired("user grant required (X-HDS-Grant)")
        key = await open_user_key(self.runtime, user_grant, account_id=package.institution_id)
        holder = KeyHolder(package.institution_id, ("institution",), key)
        package_key = await KeyRing(self.session, holder).key(package.id)
        return PackageKeyOut(package_key=b64e(package_key))


async def import_slot(runtime: Runtime, package_id: str, body: SlotImport) -> SlotImported:
    """Give an account a key slot on a complete package and all its items in its holdings,
    within its quota (an import is the account's own addition: automatic mode evicts its
    oldest studies, manual mode answers 507)."""
    async with workflow_transaction(runtime.session_maker) as session:
        package = await PackageService(runtime, session).require_complete(package_id)
        package_key = open_package_key(runtime.grant_key, package, body.sealed_package_key)
    account = await runtime.identity.account(body.account_id)
    public_key = account.public_key_bytes()
    if public_key is None:
        raise AccountWithoutKey("the account has no key pair to seal the package key to")
    async with workflow_transaction(runtime.session_maker) as session:
        if await PackageRepository(session).lock_package(package_id) is None:
            raise PackageNotFound("no such package")
        index = IndexRepository(session)
        studies = await index.studies_of_package(package_id)
        documents = await index.documents_of_package(package_id)
        if not studies and not documents:
            raise PackageEmpty()
        added, room = await add_items(
            session,
            account,
            package_id=package_id,
            sealed_key=seal_slot(public_key, package_id, package_key),
            items=[("study", s.id) for s in studies] + [("document", d.id) for d in documents],
            addition="own",
        )
        # Items someone shared with the account are now its own: revoking that share
        # no longer removes them.
        await HoldingsRepository(session).claim_holdings(account.id, package_id)
    await collect_evicted(runtime, room)
    return SlotImported(
        package_id=package_id, studies=len(studies), documents=len(documents), bytes=added
    )


def _state(package: Package) -> PackageState:
    return "complete" if package.state == "complete" else "open"


def _package_out(package: Package) -> PackagePublic:
    return view_of(PackagePublic, package, state=_state(package))
