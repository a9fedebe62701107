"""PDF uploads: reports assigned to the package's patient by form fields, each checked to
parse as a PDF with at least one page (:mod:`hds_storage.ingest.pdf_probe`) as it streams
into the blob store; a report sent twice (same bytes) is stored once."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass

from hds_common.db import utcnow
from hds_common.row_views import view_of
from hds_storage.downloads.repository import IndexRepository
from hds_storage.errors import (
    InvalidDate,
    InvalidField,
    NoFiles,
    PatientRequired,
    UnknownField,
)
from hds_storage.holdings.repository import HoldingsRepository
from hds_storage.holdings.service import holding_row
from hds_storage.ingest.multipart import Part
from hds_storage.ingest.pdf_probe import PdfProbe
from hds_storage.ingest.repository import IngestRepository
from hds_storage.ingest.rows import sealed_row
from hds_storage.ingest.run import (
    UploadRun,
    patient_for,
    start_run,
)
from hds_storage.ingest.schemas import (
    DocumentStored,
    DocumentsUploaded,
)
from hds_storage.ingest.writer import StoredObject, store_object
from hds_storage.keyring import KeyHolder
from hds_storage.models import (
    Document,
)
from hds_storage.runtime import Runtime

__all__ = ["DOCUMENT_FIELDS", "DocumentIngest", "normalise_date"]

_FIELD_LIMIT = 1024
DOCUMENT_FIELDS = frozenset(
    {"patient_id", "patient_name", "patient_birth_date", "patient_sex", "title", "date"}
)


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
    raise InvalidDate(f"{field_name} must be a date (YYYY-MM-DD)", field=field_name)


@dataclass
class PendingDocument:
    part: Part
    stored: StoredObject


class DocumentIngest:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def upload_documents(
        self,
        holder: KeyHolder,
        package_id: str,
        parts: AsyncIterator[Part],
        *,
        content_length: int | None,
    ) -> tuple[DocumentsUploaded, bool]:
        run = await start_run(
            self.runtime, holder, package_id, content_length=content_length, multipart=True
        )
        try:
            fields: dict[str, str] = {}
            pending: list[PendingDocument] = []
            async for part in parts:
                if part.filename is None:
                    await self._read_field(part, fields)
                    continue
                pending.append(await self._receive_pdf(run, part))
            if not pending:
                raise NoFiles("the request contains no file")
            result = await self._commit_documents(run, pending, fields)
        except BaseException:
            await run.failed()
            raise
        await run.succeeded()
        return result, any(d.status == "created" for d in result.documents)

    @staticmethod
    async def _read_field(part: Part, fields: dict[str, str]) -> None:
        if part.name not in DOCUMENT_FIELDS:
            raise UnknownField(
                f"unknown form field {part.label!r}; expected files and "
                f"{', '.join(sorted(DOCUMENT_FIELDS))}",
                part=part.label,
                part_index=part.index,
            )
        raw = await part.read_all(_FIELD_LIMIT)
        try:
            fields[part.name] = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise InvalidField(
                f"form field {part.name!r} is not UTF-8 text", part=part.label
            ) from None

    async def _receive_pdf(self, run: UploadRun, part: Part) -> PendingDocument:
        probe = PdfProbe(
            label=part.label, index=part.index, limit=self.runtime.settings.pdf_limit_bytes
        )

        async def checked() -> AsyncIterator[bytes]:
            async for chunk in part.chunks:
                probe.feed(chunk)
                yield chunk

        stored = await store_object(
            self.runtime.store,
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
            raise PatientRequired(
                "a PDF must be assigned to a patient: send the form field patient_id"
            )
        name = fields.get("patient_name", "")
        if creating and not name:
            raise PatientRequired(
                "the package has no patient yet: send patient_name (and patient_birth_date)"
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
        async with run.final_transaction(now) as session:
            holding_repo = HoldingsRepository(session)
            creating = await IndexRepository(session).patient_of_package(package_id) is None
            patient_fields = self._patient_fields(fields, creating=creating)
            patient = await patient_for(session, target, patient_fields, None, now)
            new_bytes = 0
            by_sha: dict[str, Document] = {}
            for item in pending:
                stored = item.stored
                existing = by_sha.get(stored.sha256) or await IngestRepository(
                    session
                ).document_by_sha(package_id, stored.sha256)
                if existing is not None:
                    run.discard_after_commit.append(stored.blob_key)
                    results.append(view_of(DocumentStored, existing, status="existing"))
                    if await holding_repo.holding(run.account.id, existing.id) is None:
                        session.add(
                            holding_row(run.account.id, package_id, "document", existing.id, now)
                        )
                        new_bytes += existing.size
                    continue
                document = sealed_row(
                    Document,
                    target.cipher,
                    stored.object_id,
                    {"title": title, "date": date},
                    now,
                    package_id=package_id,
                    patient_id=patient.id,
                    **stored.blob_columns(),
                )
                session.add(document)
                session.add(holding_row(run.account.id, package_id, "document", document.id, now))
                by_sha[stored.sha256] = document
                new_bytes += stored.size
                results.append(view_of(DocumentStored, document, status="created"))
            await holding_repo.add_usage(run.account.id, new_bytes)
            await session.flush()
        return DocumentsUploaded(package_id=package_id, documents=results)
