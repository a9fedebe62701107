"""The list's item mapping, and downloads: one storage call each, streamed through while
holding a download slot."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from hds_dlx.clients.bulk import UpstreamBody
from hds_dlx.clients.schemas import StorageItem
from hds_dlx.clients.storage import DlxSession, ItemKind, StorageClient
from hds_dlx.dates import parse_date
from hds_dlx.downloads.schemas import DataItem
from hds_dlx.downloads.streaming import DownloadSlots, StreamedDownload
from hds_dlx.errors import ComeBackLater, UnknownDataItem

__all__ = [
    "DOCUMENT_MIME_TYPE",
    "PASSED_RESPONSE_HEADERS",
    "STUDY_MIME_TYPE",
    "data_item",
    "dicom_date",
    "download_all",
    "download_filename",
    "download_item",
]

STUDY_MIME_TYPE = "application/zip"
DOCUMENT_MIME_TYPE = "application/pdf"
# Headers of a download that travel from storage to the client unchanged.
PASSED_RESPONSE_HEADERS = (
    "Content-Length",
    "Content-Range",
    "Content-Encoding",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
)

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_-]+")


def dicom_date(value: str | None) -> dt.date | None:
    """A DICOM DA (``YYYYMMDD``) as a date; None for empty or partial values."""
    return parse_date(value.strip()) if value else None


def data_item(item: StorageItem) -> DataItem | None:
    """The DLX ``dataItem`` of a storage item; None for kinds DLX cannot deliver."""
    if item.kind == "study":
        mime_type = STUDY_MIME_TYPE
    elif item.kind == "document":
        mime_type = item.mime_type or DOCUMENT_MIME_TYPE
    else:
        return None
    modalities = item.modalities
    if isinstance(modalities, list):
        # Multiple values as DICOM writes them (ModalitiesInStudy, 0008,0061).
        modalities = "\\".join(m for m in modalities if m)
    return DataItem(
        id=item.id,
        mime_type=mime_type,
        description=item.description or "",
        study_instance_uid=item.study_instance_uid or None,
        date=dicom_date(item.date),
        modalities=modalities or None,
        patients_name=item.patient_name or None,
        patients_birthdate=dicom_date(item.patient_birth_date),
        patients_sex=item.patient_sex or None,
        file_count=item.file_count,
    )


def download_filename(item_id: str | None, kind: ItemKind | None = None) -> str:
    """An attachment name that is safe on every file system and in a quoted header; the
    whole package's for no item."""
    if item_id is None:
        return "dlx-download.zip"
    safe_id = _UNSAFE_FILENAME.sub("_", item_id).strip("_")[:64] or "item"
    if kind == "study":
        return f"study-{safe_id}.zip"
    return f"report-{safe_id}.pdf"


async def download_item(
    storage: StorageClient,
    slots: DownloadSlots,
    session: DlxSession,
    *,
    item_id: str,
    conditions: Mapping[str, str],
    busy_retry_after: int,
) -> StreamedDownload:
    """One study (IHE PDI ZIP) or document, in one storage call: its kind comes with it."""
    if not item_id:
        raise UnknownDataItem()  # no item has an empty id; not worth asking storage
    _take_slot(slots, busy_retry_after)
    try:
        opened = await storage.open_item(session, item_id=item_id, conditions=conditions)
    except BaseException:
        slots.release()
        raise
    if opened.kind == "study":
        media_type = STUDY_MIME_TYPE
    else:
        media_type = opened.body.header("Content-Type") or DOCUMENT_MIME_TYPE
    return _streamed(
        opened.body, slots, media_type=media_type, filename=download_filename(item_id, opened.kind)
    )


async def download_all(
    storage: StorageClient,
    slots: DownloadSlots,
    session: DlxSession,
    *,
    conditions: Mapping[str, str],
    busy_retry_after: int,
) -> StreamedDownload:
    """The whole package as one IHE PDI ZIP, in one storage call (storage's archive route
    checks completeness itself)."""
    _take_slot(slots, busy_retry_after)
    try:
        body = await storage.open_archive(session, conditions=conditions)
    except BaseException:
        slots.release()
        raise
    return _streamed(body, slots, media_type=STUDY_MIME_TYPE, filename=download_filename(None))


def _take_slot(slots: DownloadSlots, busy_retry_after: int) -> None:
    if not slots.try_acquire():
        raise ComeBackLater(busy_retry_after, reason="download slots busy")


def _streamed(
    upstream: UpstreamBody, slots: DownloadSlots, *, media_type: str, filename: str
) -> StreamedDownload:
    """Stream the body from storage to the client, holding the download slot until the
    body is sent or the client is gone."""
    headers = {
        name: value
        for name in PASSED_RESPONSE_HEADERS
        if (value := upstream.header(name)) is not None
    }
    headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    headers["Cache-Control"] = "private, no-store"
    return StreamedDownload(
        upstream,
        status_code=upstream.status_code,
        headers=headers,
        media_type=media_type,
        release=slots.release,
    )
