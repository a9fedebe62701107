"""Ingest: institutions upload DICOM instances and PDF reports into their open packages.

One request is one *upload batch* and is all-or-nothing:

1. the batch row is committed (it marks the blobs it is about to write as in flight and
   carries its quota reservation) and quota is reserved from ``Content-Length``;
2. each part is checked by content and streamed through hasher → encryptor → blob put
   (no transaction is open meanwhile, so a slow upload holds no database lock);
3. one short transaction locks the package, re-checks everything, inserts all rows,
   turns the reservation into usage and deletes the batch row.

Any failure deletes the blobs written so far and the batch row (freeing the
reservation); a crash leaves the batch to the sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from hds_common.crypto import IntegrityError
from hds_common.db import utcnow
from hds_common.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
    UnprocessableContent,
)
from hds_storage.access import KeyHolder, integrity_failure
from hds_storage.collector import ItemRef, collect_items, delete_blobs
from hds_storage.identity import AccountInfo
from hds_storage.ingest.multipart import Part
from hds_storage.ingest.probe import DicomHeader, DicomProbe, PdfProbe, load_dicom_parser
from hds_storage.ingest.writer import StoredObject, hash_only, store_object
from hds_storage.keys import MetaCipher, open_slot
from hds_storage.models import (
    Document,
    Holding,
    Instance,
    Package,
    Patient,
    Series,
    Study,
    UploadBatch,
)
from hds_storage.quota import reserve
from hds_storage.repository import StorageRepository
from hds_storage.schemas import DocumentStored, DocumentsUploaded, InstanceStored, InstancesUploaded
from hds_storage.state import StorageState

__all__ = ["DOCUMENT_FIELDS", "IngestService", "normalise_date"]

log = structlog.get_logger("hds.storage.ingest")

DOCUMENT_FIELDS = frozenset(
    {"patient_id", "patient_name", "patient_birth_date", "patient_sex", "title", "date"}
)
_FIELD_LIMIT = 1024
Outcome = Literal["created", "existing"]
# Per-part framing of multipart bodies is not plaintext; this much of Content-Length may
# be overhead before the up-front reservation insists on it.
_MULTIPART_SLACK = 256 * 1024
# The first reservation ahead of an upload of unknown size; it doubles from there.
_FIRST_RESERVATION_AHEAD = 1024 * 1024


def normalise_date(value: str, field_name: str) -> str:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` → DICOM ``YYYYMMDD``; empty stays empty."""
    text = value.strip()
    if not text:
        return ""
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text, fmt).date().strftime("%Y%m%d")
        except ValueError:
            continue
    raise UnprocessableContent(
        f"{field_name} must be a date (YYYY-MM-DD)", slug="invalid-date", field=field_name
    )


@dataclass
class UploadTarget:
    package: Package
    package_key: bytes
    cipher: MetaCipher
    patient_id: str | None  # PatientID of the package's patient, once known


@dataclass
class PendingInstance:
    part: Part
    header: DicomHeader
    size: int
    crc32: int
    sha256: str
    stored: StoredObject | None  # None: bytes only hashed (a duplicate of a stored instance)


@dataclass
class PendingDocument:
    part: Part
    stored: StoredObject


@dataclass
class UploadRun:
    """State of one upload request: batch id, reservation, blobs written."""

    state: StorageState
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
        async with self.state.session_maker() as session, session.begin():
            repo = StorageRepository(session)
            package = await repo.lock_package(package_id, activity=now)
            if package is None or package.institution_id != holder.account_id:
                raise NotFound("no such package", slug="package-not-found")
            if package.state != "open":
                raise _package_not_open()
            self.target = await _open_target(repo, holder, package)
            repo.add(
                UploadBatch(
                    id=self.batch_id,
                    account_id=self.account.id,
                    package_id=package.id,
                    reserved_bytes=0,
                    heartbeat_at=now,
                    created_at=now,
                )
            )
            await repo.flush()
            evicted: list[ItemRef] = []
            if want > 0:
                self.reserved, evicted = await reserve(
                    repo,
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
            await collect_items(self.state.session_maker, self.state.store, evicted)
        except Exception as exc:
            log.warning("evicted_items_not_collected", error=f"{type(exc).__name__}: {exc}")

    async def _reserve(self, *, need: int, want: int) -> None:
        async with self.state.session_maker() as session, session.begin():
            amount, evicted = await reserve(
                StorageRepository(session),
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
            step = self.state.settings.quota_reservation_step_bytes
            ahead = min(step, max(self.consumed, _FIRST_RESERVATION_AHEAD))
            await self._reserve(need=need, want=need + ahead)

    async def _beat(self) -> None:
        interval = self.state.settings.upload_heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.state.session_maker() as session, session.begin():
                    alive = await StorageRepository(session).heartbeat(self.batch_id, utcnow())
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
        await delete_blobs(self.state.store, self.discard_after_commit)

    async def failed(self) -> None:
        """Undo: blobs first, then the batch row (the sweep relies on this order)."""
        await self._stop_heartbeat()

        async def undo() -> None:
            await delete_blobs(self.state.store, self.written)
            async with self.state.session_maker() as session, session.begin():
                await StorageRepository(session).delete_batch(self.batch_id)

        # Shielded: a cancelled request still cleans up after itself.
        await asyncio.shield(asyncio.ensure_future(undo()))

    async def claim_batch(self, repo: StorageRepository) -> None:
        """Inside the final transaction: the batch must still exist (not swept as dead)."""
        if not await repo.delete_batch(self.batch_id):
            raise ServiceUnavailable(
                "the upload took too long without a heartbeat and was abandoned; retry it",
                slug="upload-expired",
            )


def _open_meta(cipher: MetaCipher, table: str, row_id: str, sealed: bytes) -> dict[str, Any]:
    try:
        return cipher.open(table, row_id, sealed)
    except IntegrityError:
        raise integrity_failure("metadata failed authentication", table=table, row=row_id) from None


async def _open_target(
    repo: StorageRepository, holder: KeyHolder, package: Package
) -> UploadTarget:
    slot = await repo.slot(package.id, holder.account_id)
    if slot is None:
        raise NotFound("no such package", slug="package-not-found")
    try:
        package_key = open_slot(holder.private_key, package.id, slot.sealed_key)
    except IntegrityError:
        raise integrity_failure(
            "key slot cannot be opened with this account's key", package_id=package.id
        ) from None
    cipher = MetaCipher(package_key, package.id)
    patient = await repo.patient_of_package(package.id)
    patient_id = None
    if patient is not None:
        patient_id = str(_open_meta(cipher, "patients", patient.id, patient.meta)["patient_id"])
    return UploadTarget(package, package_key, cipher, patient_id)


def _package_not_open() -> Conflict:
    return Conflict("the package is complete; open a new package", slug="package-complete")


def _patient_mismatch(part: Part | None) -> UnprocessableContent:
    extensions: dict[str, Any] = {}
    if part is not None:
        extensions = {"part": part.label, "part_index": part.index}
    return UnprocessableContent(
        "a package holds one patient; this file belongs to another patient ID",
        slug="patient-mismatch",
        **extensions,
    )


class IngestService:
    def __init__(self, state: StorageState) -> None:
        self.state = state

    # -- common ------------------------------------------------------------------------

    async def _run(
        self,
        holder: KeyHolder,
        package_id: str,
        *,
        content_length: int | None,
        multipart: bool,
    ) -> UploadRun:
        account = await self.state.identity.account(holder.account_id)
        run = UploadRun(self.state, account)
        want = content_length or 0
        need = max(0, want - _MULTIPART_SLACK) if multipart else want
        await run.start(holder, package_id, need=need, want=want)
        return run

    # -- DICOM ---------------------------------------------------------------------------

    async def upload_instances(
        self,
        holder: KeyHolder,
        package_id: str,
        parts: AsyncIterator[Part],
        *,
        content_length: int | None,
        multipart: bool,
    ) -> tuple[InstancesUploaded, bool]:
        """Returns the stored instances and whether anything new was stored."""
        run = await self._run(
            holder, package_id, content_length=content_length, multipart=multipart
        )
        try:
            pending: list[PendingInstance] = []
            expected_patient = run.target.patient_id
            seen: dict[str, PendingInstance] = {}
            async for part in parts:
                item = await self._receive_dicom(run, part, expected_patient, seen)
                expected_patient = item.header.patient["patient_id"]
                seen.setdefault(item.header.sop_instance_uid, item)
                pending.append(item)
            if not pending:
                raise BadRequest("the request contains no file", slug="no-files")
            result = await self._commit_instances(run, pending)
        except BaseException:
            await run.failed()
            raise
        await run.succeeded()
        return result, any(i.status == "created" for i in result.instances)

    async def _receive_dicom(
        self,
        run: UploadRun,
        part: Part,
        expected_patient: str | None,
        seen: dict[str, PendingInstance],
    ) -> PendingInstance:
        await load_dicom_parser()
        probe = DicomProbe(
            label=part.label, index=part.index, limit=self.state.settings.dicom_header_limit_bytes
        )
        header: DicomHeader | None = None
        async for chunk in part.chunks:
            header = probe.feed(chunk)
            if header is not None:
                break
        if header is None:
            header = probe.finish()
        patient_id = header.patient["patient_id"]
        if expected_patient is not None and patient_id != expected_patient:
            raise _patient_mismatch(part)
        # The rest of the file is checked as it streams; a bad end refuses it (and the
        # request's failure handling deletes what was written of it).
        body = probe.rest(part.chunks)
        known = seen[header.sop_instance_uid].sha256 if header.sop_instance_uid in seen else None
        if known is None:
            async with self.state.session_maker() as session:
                committed = await StorageRepository(session).instance_by_uid(
                    run.target.package.id, header.sop_instance_uid
                )
            known = committed.sha256 if committed is not None else None
        if known is not None:
            # A repeat: only the bytes are compared, nothing is stored.
            digest = await hash_only(body)
            if digest.sha256 != known:
                raise _instance_conflict(part, header.sop_instance_uid)
            return PendingInstance(part, header, digest.size, digest.crc32, digest.sha256, None)
        stored = await store_object(
            self.state.store,
            package_id=run.target.package.id,
            package_key=run.target.package_key,
            chunks=body,
            before_bytes=run.before_bytes,
            on_key=run.remember,
        )
        return PendingInstance(part, header, stored.size, stored.crc32, stored.sha256, stored)

    async def _commit_instances(
        self, run: UploadRun, pending: list[PendingInstance]
    ) -> InstancesUploaded:
        target = run.target
        package_id = target.package.id
        cipher = target.cipher
        now = utcnow()
        results: list[InstanceStored] = []
        async with self.state.session_maker() as session, session.begin():
            repo = StorageRepository(session)
            if not await repo.touch_open_package(package_id, now):
                raise _package_not_open()
            await run.claim_batch(repo)
            await repo.lock_usage(run.account.id)
            patient = await self._patient_for(repo, target, pending[0].header.patient, None, now)
            studies: dict[str, Study] = {}
            series_rows: dict[tuple[str, str], Series] = {}
            held: set[str] = set()
            created: dict[str, Instance] = {}
            new_bytes = 0
            for item in pending:
                header = item.header
                existing = created.get(header.sop_instance_uid) or await repo.instance_by_uid(
                    package_id, header.sop_instance_uid
                )
                if existing is not None:
                    if existing.sha256 != item.sha256:
                        raise _instance_conflict(item.part, header.sop_instance_uid)
                    if item.stored is not None:
                        run.discard_after_commit.append(item.stored.blob_key)
                    results.append(_instance_out(existing, "existing"))
                    continue
                assert item.stored is not None
                study = studies.get(header.study_instance_uid)
                if study is None:
                    study = await repo.study_by_uid(package_id, header.study_instance_uid)
                    if study is None:
                        study_id = str(uuid.uuid4())
                        study = Study(
                            id=study_id,
                            package_id=package_id,
                            patient_id=patient.id,
                            study_instance_uid=header.study_instance_uid,
                            meta=cipher.seal("studies", study_id, header.study),
                            created_at=now,
                        )
                        repo.add(study)
                        # No ORM relationships: parents are flushed before children.
                        await repo.flush()
                    studies[header.study_instance_uid] = study
                if study.id not in held:
                    new_bytes += await self._ensure_holding(
                        repo, run.account.id, package_id, study, now
                    )
                    held.add(study.id)
                series_key = (study.id, header.series_instance_uid)
                series = series_rows.get(series_key)
                if series is None:
                    series = await repo.series_by_uid(study.id, header.series_instance_uid)
                    if series is None:
                        series_id = str(uuid.uuid4())
                        series = Series(
                            id=series_id,
                            study_id=study.id,
                            series_instance_uid=header.series_instance_uid,
                            meta=cipher.seal("series", series_id, header.series),
                            created_at=now,
                        )
                        repo.add(series)
                        await repo.flush()
                    series_rows[series_key] = series
                stored = item.stored
                instance = Instance(
                    id=stored.object_id,
                    package_id=package_id,
                    study_id=study.id,
                    series_id=series.id,
                    sop_instance_uid=header.sop_instance_uid,
                    blob_key=stored.blob_key,
                    size=stored.size,
                    crc32=stored.crc32,
                    sha256=stored.sha256,
                    segment_size=stored.segment_size,
                    meta=cipher.seal(
                        "instances",
                        stored.object_id,
                        {
                            "sop_class_uid": header.sop_class_uid,
                            "transfer_syntax_uid": header.transfer_syntax_uid,
                            "instance_number": header.instance_number,
                        },
                    ),
                    created_at=now,
                )
                repo.add(instance)
                created[header.sop_instance_uid] = instance
                new_bytes += stored.size
                results.append(_instance_out(instance, "created"))
            await repo.add_usage(run.account.id, new_bytes)
            await repo.flush()
        return InstancesUploaded(package_id=package_id, instances=results)

    async def _ensure_holding(
        self,
        repo: StorageRepository,
        account_id: str,
        package_id: str,
        study: Study,
        now: dt.datetime,
    ) -> int:
        """The institution holds every study it publishes; returns the bytes this adds to
        its usage (non-zero only if it had deleted a study it is now adding to again)."""
        if await repo.holding(account_id, study.id) is not None:
            return 0
        repo.add(
            Holding(
                id=str(uuid.uuid4()),
                account_id=account_id,
                package_id=package_id,
                item_kind="study",
                item_id=study.id,
                created_at=now,
            )
        )
        totals = await repo.study_totals([study.id])
        return totals.get(study.id, (0, 0))[1]

    async def _patient_for(
        self,
        repo: StorageRepository,
        target: UploadTarget,
        fields: dict[str, str],
        part: Part | None,
        now: dt.datetime,
    ) -> Patient:
        """The package's patient, created from ``fields`` if the package has none yet;
        ``fields["patient_id"]`` must match it."""
        patient = await repo.patient_of_package(target.package.id)
        if patient is None:
            patient_row_id = str(uuid.uuid4())
            patient = Patient(
                id=patient_row_id,
                package_id=target.package.id,
                meta=target.cipher.seal("patients", patient_row_id, fields),
                created_at=now,
            )
            repo.add(patient)
            await repo.flush()
            return patient
        stored = _open_meta(target.cipher, "patients", patient.id, patient.meta)
        if stored.get("patient_id") != fields["patient_id"]:
            raise _patient_mismatch(part)
        return patient

    # -- PDF -------------------------------------------------------------------------------

    async def upload_documents(
        self,
        holder: KeyHolder,
        package_id: str,
        parts: AsyncIterator[Part],
        *,
        content_length: int | None,
    ) -> tuple[DocumentsUploaded, bool]:
        run = await self._run(holder, package_id, content_length=content_length, multipart=True)
        try:
            fields: dict[str, str] = {}
            pending: list[PendingDocument] = []
            async for part in parts:
                if part.filename is None:
                    await self._read_field(part, fields)
                    continue
                pending.append(await self._receive_pdf(run, part))
            if not pending:
                raise BadRequest("the request contains no file", slug="no-files")
            result = await self._commit_documents(run, pending, fields)
        except BaseException:
            await run.failed()
            raise
        await run.succeeded()
        return result, any(d.status == "created" for d in result.documents)

    @staticmethod
    async def _read_field(part: Part, fields: dict[str, str]) -> None:
        if part.name not in DOCUMENT_FIELDS:
            raise UnprocessableContent(
                f"unknown form field {part.label!r}; expected files and "
                f"{', '.join(sorted(DOCUMENT_FIELDS))}",
                slug="unknown-field",
                part=part.label,
                part_index=part.index,
            )
        raw = await part.read_all(_FIELD_LIMIT)
        try:
            fields[part.name] = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise UnprocessableContent(
                f"form field {part.name!r} is not UTF-8 text", slug="invalid-field", part=part.label
            ) from None

    async def _receive_pdf(self, run: UploadRun, part: Part) -> PendingDocument:
        probe = PdfProbe(
            label=part.label, index=part.index, limit=self.state.settings.pdf_limit_bytes
        )

        async def checked() -> AsyncIterator[bytes]:
            async for chunk in part.chunks:
                probe.feed(chunk)
                yield chunk

        stored = await store_object(
            self.state.store,
            package_id=run.target.package.id,
            package_key=run.target.package_key,
            chunks=checked(),
            before_bytes=run.before_bytes,
            on_key=run.remember,
        )
        # A refusal here leaves the blob to the request's failure handling (deleted).
        await probe.finish()
        return PendingDocument(part, stored)

    @staticmethod
    def _patient_fields(fields: dict[str, str], *, creating: bool) -> dict[str, str]:
        patient_id = fields.get("patient_id", "")
        if not patient_id:
            raise UnprocessableContent(
                "a PDF must be assigned to a patient: send the form field patient_id",
                slug="patient-required",
            )
        name = fields.get("patient_name", "")
        if creating and not name:
            raise UnprocessableContent(
                "the package has no patient yet: send patient_name (and patient_birth_date)",
                slug="patient-required",
            )
        return {
            "patient_id": patient_id,
            "name": name,
            "birth_date": normalise_date(
                fields.get("patient_birth_date", ""), "patient_birth_date"
            ),
            "sex": fields.get("patient_sex", "").upper()[:1],
        }

    async def _commit_documents(
        self, run: UploadRun, pending: list[PendingDocument], fields: dict[str, str]
    ) -> DocumentsUploaded:
        target = run.target
        package_id = target.package.id
        title = fields.get("title", "") or "Report"
        date = normalise_date(fields.get("date", ""), "date")
        now = utcnow()
        results: list[DocumentStored] = []
        async with self.state.session_maker() as session, session.begin():
            repo = StorageRepository(session)
            if not await repo.touch_open_package(package_id, now):
                raise _package_not_open()
            await run.claim_batch(repo)
            await repo.lock_usage(run.account.id)
            creating = await repo.patient_of_package(package_id) is None
            patient_fields = self._patient_fields(fields, creating=creating)
            patient = await self._patient_for(repo, target, patient_fields, None, now)
            new_bytes = 0
            by_sha: dict[str, Document] = {}
            for item in pending:
                stored = item.stored
                existing = by_sha.get(stored.sha256) or await repo.document_by_sha(
                    package_id, stored.sha256
                )
                if existing is not None:
                    run.discard_after_commit.append(stored.blob_key)
                    results.append(_document_out(existing, "existing"))
                    if await repo.holding(run.account.id, existing.id) is None:
                        repo.add(_holding(run.account.id, package_id, "document", existing.id, now))
                        new_bytes += existing.size
                    continue
                document = Document(
                    id=stored.object_id,
                    package_id=package_id,
                    patient_id=patient.id,
                    blob_key=stored.blob_key,
                    size=stored.size,
                    crc32=stored.crc32,
                    sha256=stored.sha256,
                    segment_size=stored.segment_size,
                    meta=target.cipher.seal(
                        "documents", stored.object_id, {"title": title, "date": date}
                    ),
                    created_at=now,
                )
                repo.add(document)
                repo.add(_holding(run.account.id, package_id, "document", document.id, now))
                by_sha[stored.sha256] = document
                new_bytes += stored.size
                results.append(_document_out(document, "created"))
            await repo.add_usage(run.account.id, new_bytes)
            await repo.flush()
        return DocumentsUploaded(package_id=package_id, documents=results)


def _holding(
    account_id: str, package_id: str, kind: str, item_id: str, now: dt.datetime
) -> Holding:
    return Holding(
        id=str(uuid.uuid4()),
        account_id=account_id,
        package_id=package_id,
        item_kind=kind,
        item_id=item_id,
        created_at=now,
    )


def _instance_conflict(part: Part, sop_uid: str) -> Conflict:
    return Conflict(
        "an instance with this SOP Instance UID but different bytes is already stored",
        slug="instance-conflict",
        part=part.label,
        part_index=part.index,
        sop_instance_uid=sop_uid,
    )


def _instance_out(instance: Instance, status: Outcome) -> InstanceStored:
    return InstanceStored(
        id=instance.id,
        sop_instance_uid=instance.sop_instance_uid,
        study_id=instance.study_id,
        series_id=instance.series_id,
        size=instance.size,
        sha256=instance.sha256,
        status=status,
    )


def _document_out(document: Document, status: Outcome) -> DocumentStored:
    return DocumentStored(
        id=document.id,
        size=document.size,
        sha256=document.sha256,
        status=status,
    )
