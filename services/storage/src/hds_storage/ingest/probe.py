"""Content checks of uploaded files: what a part *is*, never what it is called.

DICOM: a Part 10 file (128-byte preamble + ``DICM``) whose header pydicom can parse
without pixel data. Only the start of the part is buffered, until pydicom has read up to
the pixel data (or the part ended): a truncated buffer would make pydicom return a
partial dataset silently, so a parse only counts when it stopped *before* the end of the
buffer. PDF: the ``%PDF-`` header.
"""

from __future__ import annotations

import asyncio
import io
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hds_common.errors import UnprocessableContent, UnsupportedMediaType

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "PDF_MAGIC",
    "DicomHeader",
    "DicomProbe",
    "check_pdf_start",
    "load_dicom_parser",
    "not_accepted",
]

_PREAMBLE = 128
_MAGIC = b"DICM"
_FIRST_ATTEMPT = 16 * 1024
PDF_MAGIC = b"%PDF-"


async def load_dicom_parser() -> None:
    """Import pydicom (with numpy, its data dictionaries, ...) in a worker thread.

    Only ingest parses DICOM, so a process that only serves downloads never loads it
    (tens of MB of resident memory); the first upload imports it off the event loop."""
    if "pydicom.filereader" not in sys.modules:
        await asyncio.to_thread(__import__, "pydicom.filereader")


def not_accepted(label: str, index: int, reason: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"{label!r}: {reason}",
        slug="unsupported-content",
        part=label,
        part_index=index,
    )


@dataclass(frozen=True, slots=True)
class DicomHeader:
    """What the index keeps of one instance (descriptive fields go into encrypted meta)."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    instance_number: int | None
    patient: dict[str, str]
    study: dict[str, str]
    series: dict[str, Any]


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    return str(value).strip()


def _integer(dataset: Dataset, keyword: str) -> int | None:
    value = dataset.get(keyword)
    if value is None or str(value).strip() == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _header(dataset: Dataset) -> dict[str, Any]:
    meta = dataset.file_meta
    return {
        "sop_class_uid": _text(dataset, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID"),
        "sop_instance_uid": _text(dataset, "SOPInstanceUID")
        or _text(meta, "MediaStorageSOPInstanceUID"),
        "transfer_syntax_uid": _text(meta, "TransferSyntaxUID"),
        "study_instance_uid": _text(dataset, "StudyInstanceUID"),
        "series_instance_uid": _text(dataset, "SeriesInstanceUID"),
        "instance_number": _integer(dataset, "InstanceNumber"),
        "patient": {
            "patient_id": _text(dataset, "PatientID"),
            "name": _text(dataset, "PatientName"),
            "birth_date": _text(dataset, "PatientBirthDate"),
            "sex": _text(dataset, "PatientSex"),
        },
        "study": {
            "date": _text(dataset, "StudyDate"),
            "time": _text(dataset, "StudyTime"),
            "description": _text(dataset, "StudyDescription"),
            "accession_number": _text(dataset, "AccessionNumber"),
            "study_id": _text(dataset, "StudyID"),
        },
        "series": {
            "modality": _text(dataset, "Modality"),
            "number": _integer(dataset, "SeriesNumber"),
            "description": _text(dataset, "SeriesDescription"),
        },
    }


class DicomProbe:
    """Feed the first chunks of a part; returns the header once it is known."""

    def __init__(self, *, label: str, index: int, limit: int) -> None:
        self.label = label
        self.index = index
        self.limit = limit
        self.buffer = bytearray()
        self._next_attempt = _FIRST_ATTEMPT

    def feed(self, chunk: bytes) -> DicomHeader | None:
        self.buffer += chunk
        if len(self.buffer) >= _PREAMBLE + len(_MAGIC):
            self._check_magic()
        if len(self.buffer) < self._next_attempt:
            return None
        header = self._parse(final=False)
        if header is not None:
            return header
        if len(self.buffer) > self.limit:
            raise not_accepted(
                self.label,
                self.index,
                f"no parseable DICOM header within the first {self.limit} bytes",
            )
        self._next_attempt = min(len(self.buffer) * 2, self.limit + 1)
        return None

    def finish(self) -> DicomHeader:
        """The part ended: the whole file is in the buffer."""
        self._check_magic()
        header = self._parse(final=True)
        assert header is not None
        return header

    def _check_magic(self) -> None:
        if (
            len(self.buffer) < _PREAMBLE + len(_MAGIC)
            or self.buffer[_PREAMBLE : _PREAMBLE + len(_MAGIC)] != _MAGIC
        ):
            raise not_accepted(
                self.label, self.index, "not a DICOM Part 10 file (no DICM preamble)"
            )

    def _parse(self, *, final: bool) -> DicomHeader | None:
        from pydicom import dcmread

        data = bytes(self.buffer)
        source = io.BytesIO(data)
        try:
            with warnings.catch_warnings():
                # Real-world files carry many harmless irregularities pydicom warns about.
                warnings.simplefilter("ignore")
                dataset = dcmread(source, stop_before_pixels=True)
                stopped_early = source.tell() < len(data)
                if not (stopped_early or final):
                    return None  # may be a silently truncated parse: wait for more bytes
                fields = _header(dataset)
        except Exception as exc:  # any parser failure means "not an acceptable DICOM file"
            if not final:
                return None
            raise not_accepted(
                self.label, self.index, f"DICOM header cannot be parsed ({type(exc).__name__})"
            ) from None
        if not fields["transfer_syntax_uid"]:
            raise not_accepted(
                self.label, self.index, "DICOM header cannot be parsed (no File Meta Information)"
            )
        missing = [
            name
            for name in (
                "sop_class_uid",
                "sop_instance_uid",
                "study_instance_uid",
                "series_instance_uid",
            )
            if not fields[name]
        ]
        if missing:
            raise UnprocessableContent(
                f"{self.label!r}: DICOM header lacks {', '.join(missing)}",
                slug="dicom-incomplete",
                part=self.label,
                part_index=self.index,
            )
        for name in ("sop_instance_uid", "study_instance_uid", "series_instance_uid"):
            if len(fields[name]) > 64:
                raise UnprocessableContent(
                    f"{self.label!r}: {name} longer than 64 characters",
                    slug="dicom-incomplete",
                    part=self.label,
                    part_index=self.index,
                )
        return DicomHeader(**fields)


def check_pdf_start(start: bytes, *, label: str, index: int) -> None:
    if not start.startswith(PDF_MAGIC):
        raise not_accepted(label, index, "not a PDF document (no %PDF- header)")
