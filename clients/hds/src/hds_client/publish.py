"""Publishing as an institution: log in, create a package, upload every DICOM and PDF
file, complete the package and issue an access code."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from hds_client.api import SuiteClient
from hds_client.errors import ClientError
from hds_client.files import UploadSet

__all__ = ["CHUNK_SIZE", "UPLOAD_CONCURRENCY", "PublishResult", "parse_birth_date", "publish"]

CHUNK_SIZE = 1024 * 1024
UPLOAD_CONCURRENCY = 4
# Earliest birth date accepted (the suite's own limit); anything before is a typing error.
_EARLIEST_BIRTH_DATE = dt.date(1870, 1, 1)


@dataclass(frozen=True)
class PublishResult:
    package_id: str
    code_id: str
    code: str
    link: str
    expires_at: str
    qr_svg: str
    qr_png: str
    sheet_pdf: str
    dicom_files: int
    pdf_files: int
    skipped_files: int


def parse_birth_date(text: str, *, today: dt.date | None = None) -> dt.date:
    """A birth date from ``YYYYMMDD`` or ``YYYY-MM-DD``, checked here so a typing error
    is reported before anything is uploaded; :class:`ClientError` else."""
    value = text.strip()
    match = re.fullmatch(r"([0-9]{4})([0-9]{2})([0-9]{2})", value) or re.fullmatch(
        r"([0-9]{4})-([0-9]{2})-([0-9]{2})", value
    )
    if match is None:
        raise ClientError("birth date must be YYYYMMDD or YYYY-MM-DD")
    try:
        date = dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise ClientError("birth date is not a calendar date") from None
    # One day of slack: the patient's local date may be ahead of UTC.
    latest = (today or dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=1)
    if not _EARLIEST_BIRTH_DATE <= date <= latest:
        raise ClientError("birth date is out of range")
    return date


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
            yield chunk


async def _pdf_patient(
    api: SuiteClient,
    package_id: str,
    *,
    birth_date: dt.date,
    patient_id: str | None,
    patient_name: str | None,
) -> dict[str, str]:
    """The patient assignment of the PDFs: the package's patient (from its DICOM files),
    else the one given by the caller."""
    patient = (await api.package(package_id)).patient
    if patient is not None and patient.get("patient_id"):
        return {"patient_id": str(patient["patient_id"])}
    if not (patient_id and patient_name):
        raise ClientError(
            "PDF reports must be assigned to a patient: with no DICOM files, give "
            "--patient-id and --patient-name"
        )
    return {
        "patient_id": patient_id,
        "patient_name": patient_name,
        "patient_birth_date": f"{birth_date:%Y%m%d}",
    }


async def publish(
    api: SuiteClient,
    *,
    uploads: UploadSet,
    birth_date: dt.date,
    email: str,
    password: str,
    validity_days: int | None = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
    progress: TextIO | None = None,
) -> PublishResult:
    """The whole publishing flow against the gateway ``api`` talks to."""

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    if not uploads.dicom and not uploads.pdf:
        raise ClientError("no DICOM or PDF files found")
    await api.login(email, password)
    package_id = (await api.create_package()).id
    say(
        f"Uploading {len(uploads.dicom)} DICOM file(s) and {len(uploads.pdf)} PDF file(s) "
        f"to package {package_id}"
    )
    limit = asyncio.Semaphore(UPLOAD_CONCURRENCY)

    async def upload(path: Path) -> None:
        async with limit:
            await api.upload_instance(
                package_id, _file_chunks(path), length=path.stat().st_size, name=str(path)
            )

    try:
        async with asyncio.TaskGroup() as group:
            for path in uploads.dicom:
                group.create_task(upload(path))
    except ExceptionGroup as failed:
        # Report the first failed upload; the others were cancelled or failed alike.
        first = failed.exceptions[0]
        if isinstance(first, ClientError):
            raise first from None
        raise
    if uploads.pdf:
        # After the DICOM files, which give the package its patient.
        patient = await _pdf_patient(
            api,
            package_id,
            birth_date=birth_date,
            patient_id=patient_id,
            patient_name=patient_name,
        )
        for path in uploads.pdf:
            # Storage takes PDFs as multipart/form-data; httpx streams the part from disk.
            with path.open("rb") as file:
                await api.upload_document(package_id, path.name, file, patient)
    await api.complete_package(package_id)
    issued = await api.issue_code(package_id, birth_date, validity_days=validity_days)
    return PublishResult(
        package_id=package_id,
        code_id=issued.id,
        code=issued.code,
        link=issued.link,
        expires_at=issued.expires_at,
        qr_svg=issued.qr_svg,
        qr_png=issued.qr_png,
        sheet_pdf=issued.sheet_pdf,
        dicom_files=len(uploads.dicom),
        pdf_files=len(uploads.pdf),
        skipped_files=len(uploads.skipped),
    )
