"""One upload request of an institution into its open package: an *upload run*.

One request is one *upload batch* and is all-or-nothing:

1. the batch row is committed (it marks the blobs it is about to write as in flight and
   carries its quota reservation) and quota is reserved from ``Content-Length``;
2. each part is checked by content and streamed through hasher → encryptor → blob put
   (no transaction is open meanwhile, so a slow upload holds no database lock);
3. one short transaction locks the package, re-checks everything, inserts all rows,
   turns the reservation into usage and deletes the batch row.

Any failure deletes the blobs written so far and the batch row (freeing the
reservation); a crash leaves the batch to the sweep. What is specific to DICOM and to PDF
is in :mod:`hds_storage.ingest.dicom` and :mod:`hds_storage.ingest.documents`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_common.crypto import IntegrityError
from hds_common.db import utcnow
from hds_storage.clients.identity import AccountInfo
from hds_storage.downloads.repository import IndexRepository
from hds_storage.errors import (
    PackageComplete,
    PackageNotFound,
    PatientMismatch,
    UploadExpired,
    integrity_failure,
)
from hds_storage.holdings.quota import reserve
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.ingest.multipart import Part
from hds_storage.ingest.repository import IngestRepository
from hds_storage.ingest.rows import add_new_row
from hds_storage.keyring import KeyHolder
from hds_storage.keys import MetaCipher, open_slot
from hds_storage.maintenance.collector import ItemRef, collect_items, delete_blobs
from hds_storage.models import (
    Package,
    Patient,
    UploadBatch,
)
from hds_storage.packages.repository import PackageRepository
from hds_storage.runtime import Runtime
from hds_storage.transactions import workflow_transaction

__all__ = [
    "UploadRun",
    "UploadTarget",
    "open_meta",
    "package_not_open",
    "patient_for",
    "patient_mismatch",
    "start_run",
]

log = structlog.get_logger("hds.storage.ingest")

# Per-part framing of multipart bodies is not plaintext; this much of Content-Length may
# be overhead before the up-front reservation insists on it.
_MULTIPART_SLACK = 256 * 1024
# The first reservation ahead of an upload of unknown size; it doubles from there.
_FIRST_RESERVATION_AHEAD = 1024 * 1024


@dataclass
class UploadTarget:
    package: Package
    package_key: bytes
    cipher: MetaCipher
    patient_id: str | None  # PatientID of the package's patient, once known


@dataclass
class UploadRun:
    """State of one upload request: batch id, reservation, blobs written."""

    runtime: Runtime
    account: AccountInfo
    target: UploadTarget = field(init=False)
    batch_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    reserved: int = 0
    consumed: int = 0
    written: list[str] = field(default_factory=list)
    discard_after_commit: list[str] = field(default_factory=list)
    _heartbeat: asyncio.Task[None] | None = None

    async def start(self, holder: KeyHolder, package_id: str, *, need: int, want: int) -> None:
        """One transaction: lock and check the package, open the institution's key slot,
        register the batch and reserve quota (package lock before usage lock)."""
        now = utcnow()
        async with workflow_transaction(self.runtime.session_maker) as session:
            package = await PackageRepository(session).lock_package(package_id, activity=now)
            if package is None or package.institution_id != holder.account_id:
                raise PackageNotFound("no such package")
            if package.state != "open":
                raise package_not_open()
            self.target = await _open_target(session, holder, package)
            session.add(
                UploadBatch(
                    id=self.batch_id,
                    account_id=self.account.id,
                    package_id=package.id,
                    reserved_bytes=0,
                    heartbeat_at=now,
                    created_at=now,
                )
            )
            await session.flush()
            evicted: list[ItemRef] = []
            if want > 0:
                self.reserved, evicted = await reserve(
                    session,
                    self.account,
                    batch_id=self.batch_id,
                    need=need,
                    want=want,
                    keep_package=package.id,
                )
        self._heartbeat = asyncio.create_task(self._beat())
        await self._collect(evicted)

    async def _collect(self, evicted: list[ItemRef]) -> None:
        """Remove what automatic deletion evicted; a failure here is not the upload's
        (the maintenance pass collects unheld items later)."""
        if not evicted:
            return
        log.info("quota_evicted", account_id=self.account.id, studies=len(evicted))
        try:
            await collect_items(self.runtime.session_maker, self.runtime.store, evicted)
        except Exception as exc:
            log.warning("evicted_items_not_collected", error=f"{type(exc).__name__}: {exc}")

    async def _reserve(self, *, need: int, want: int) -> None:
        async with workflow_transaction(self.runtime.session_maker) as session:
            amount, evicted = await reserve(
                session,
                self.account,
                batch_id=self.batch_id,
                need=need,
                want=want,
                keep_package=self.target.package.id,
            )
        self.reserved += amount
        await self._collect(evicted)

    async def before_bytes(self, count: int) -> None:
        """Reserve before ``count`` more bytes are stored. Without Content-Length the
        size is unknown: reserve ahead by as much as the upload has sent so far (at
        least _FIRST_RESERVATION_AHEAD, at most the reservation step), so that the
        reservations of concurrent small uploads stay near their sizes instead of a full
        step each, while a large upload still needs few reservation round trips."""
        self.consumed += count
        if self.consumed > self.reserved:
            need = self.consumed - self.reserved
            step = self.runtime.settings.quota_reservation_step_bytes
            ahead = min(step, max(self.consumed, _FIRST_RESERVATION_AHEAD))
            await self._reserve(need=need, want=need + ahead)

    async def _beat(self) -> None:
        interval = self.runtime.settings.upload_heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                async with workflow_transaction(self.runtime.session_maker) as session:
                    alive = await IngestRepository(session).heartbeat(self.batch_id, utcnow())
            except Exception as exc:  # a database hiccup must not kill the upload
                log.warning("upload_heartbeat_failed", error=str(exc))
                continue
            if not alive:
                return

    async def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat

    def remember(self, key: str) -> None:
        self.written.append(key)

    async def succeeded(self) -> None:
        await self._stop_heartbeat()
        await delete_blobs(self.runtime.store, self.discard_after_commit)

    async def failed(self) -> None:
        """Undo: blobs first, then the batch row (the sweep relies on this order)."""
        await self._stop_heartbeat()

        async def undo() -> None:
            await delete_blobs(self.runtime.store, self.written)
            async with workflow_transaction(self.runtime.session_maker) as session:
                await IngestRepository(session).delete_batch(self.batch_id)

        # Shielded: a cancelled request still cleans up after itself.
        await asyncio.shield(asyncio.ensure_future(undo()))

    @asynccontextmanager
    async def final_transaction(self, now: dt.datetime) -> AsyncIterator[AsyncSession]:
        """Step 3: the one transaction that indexes what was stored, once the package is
        still open (its lock, recording the activity), the batch still this run's, and
        the account's usage locked (in that order)."""
        async with workflow_transaction(self.runtime.session_maker) as session:
            if not await PackageRepository(session).touch_open_package(self.target.package.id, now):
                raise package_not_open()
            await self.claim_batch(session)
            await HoldingsRepository(session).lock_usage(self.account.id)
            yield session

    async def claim_batch(self, session: AsyncSession) -> None:
        """Inside the final transaction: the batch must still exist (not swept as dead)."""
        if not await IngestRepository(session).delete_batch(self.batch_id):
            raise UploadExpired(
                "the upload took too long without a heartbeat and was abandoned; retry it"
            )


def open_meta(cipher: MetaCipher, table: str, row_id: str, sealed: bytes) -> dict[str, Any]:
    try:
        return cipher.open(table, row_id, sealed)
    except IntegrityError:
        raise integrity_failure("metadata failed authentication", table=table, row=row_id) from None


async def _open_target(session: AsyncSession, holder: KeyHolder, package: Package) -> UploadTarget:
    slot = await PackageRepository(session).slot(package.id, holder.account_id)
    if slot is None:
        raise PackageNotFound("no such package")
    try:
        package_key = open_slot(holder.private_key, package.id, slot.sealed_key)
    except IntegrityError:
        raise integrity_failure(
            "key slot cannot be opened with this account's key", package_id=package.id
        ) from None
    cipher = MetaCipher(package_key, package.id)
    patient = await IndexRepository(session).patient_of_package(package.id)
    patient_id = None
    if patient is not None:
        patient_id = str(open_meta(cipher, "patients", patient.id, patient.meta)["patient_id"])
    return UploadTarget(package, package_key, cipher, patient_id)


def package_not_open() -> PackageComplete:
    return PackageComplete()


def patient_mismatch(part: Part | None) -> PatientMismatch:
    extensions: dict[str, Any] = {}
    if part is not None:
        extensions = {"part": part.label, "part_index": part.index}
    return PatientMismatch(
        "a package holds one patient; this file belongs to another patient ID", **extensions
    )


async def start_run(
    runtime: Runtime,
    holder: KeyHolder,
    package_id: str,
    *,
    content_length: int | None,
    multipart: bool,
) -> UploadRun:
    """Step 1 of an upload: the account's quota from the identity service, the batch row
    and the reservation from ``Content-Length``."""
    account = await runtime.identity.account(holder.account_id)
    run = UploadRun(runtime, account)
    want = content_length or 0
    need = max(0, want - _MULTIPART_SLACK) if multipart else want
    await run.start(holder, package_id, need=need, want=want)
    return run


async def patient_for(
    session: AsyncSession,
    target: UploadTarget,
    fields: dict[str, str],
    part: Part | None,
    now: dt.datetime,
) -> Patient:
    """The package's patient, created from ``fields`` if the package has none yet;
    ``fields["patient_id"]`` must match it."""
    patient = await IndexRepository(session).patient_of_package(target.package.id)
    if patient is None:
        return await add_new_row(
            session, Patient, target.cipher, fields, now, package_id=target.package.id
        )
    stored = open_meta(target.cipher, "patients", patient.id, patient.meta)
    if stored.get("patient_id") != fields["patient_id"]:
        raise patient_mismatch(part)
    return patient
