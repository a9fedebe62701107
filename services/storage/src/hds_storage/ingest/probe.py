"""Content checks of uploaded DICOM files: what a part *is*, never what it is called.

DICOM, checked as a receiving archive checks it, in the one pass that stores the file:

- the File Meta Information parses strictly (see :mod:`.dicom_structure`): the group
  length (0002,0000) matches the meta elements, explicit VR little endian, with
  FileMetaInformationVersion, MediaStorageSOPClassUID, MediaStorageSOPInstanceUID,
  TransferSyntaxUID and ImplementationClassUID;
- the transfer syntax is one of :data:`ACCEPTED_TRANSFER_SYNTAXES`;
- the whole dataset is walked in that transfer syntax down to the last byte (sequences,
  items, encapsulated fragments, the file must not end inside an element);
- the dataset before the pixel data (the *header*, buffered up to
  ``dicom_header_limit_bytes``) is read with pydicom for the index: SOPClassUID,
  SOPInstanceUID, StudyInstanceUID and SeriesInstanceUID must be present, valid UIDs
  (at most 64 characters, digits and dots, no leading zeros in a component), and the
  SOP class and instance must equal MediaStorageSOPClassUID and
  MediaStorageSOPInstanceUID.

A file that is not DICOM or does not parse is a 415; a parsed file whose attributes are
missing or wrong is a 422; both name the DICOM keyword.

PDF: :mod:`hds_storage.ingest.pdf_probe`.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import re
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hds_common.errors import UnprocessableContent, UnsupportedMediaType
from hds_storage.errors import DicomIncomplete, DicomInvalid, UnsupportedContent
from hds_storage.ingest.dicom_meta import FileMeta, check_meta_ends, read_file_meta
from hds_storage.ingest.dicom_structure import (
    DatasetWalker,
    NotDicom,
    StructureError,
    describe_tag,
)
from hds_storage.ingest.transfer_syntaxes import (
    ACCEPTED_TRANSFER_SYNTAXES,
    DEFLATED,
    EXPLICIT_BIG,
    IMPLICIT_LITTLE,
    NATIVE,
)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = [
    "ACCEPTED_TRANSFER_SYNTAXES",
    "DicomHeader",
    "DicomProbe",
    "load_dicom_parser",
    "not_accepted",
]

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_UID_MAX = 64
# File meta elements every receiver needs (element numbers in group 0002).
_REQUIRED_META = (0x0001, 0x0002, 0x0003, 0x0010, 0x0012)
_META_UIDS = (0x0002, 0x0003, 0x0010, 0x0012)


_parser_loaded = asyncio.Event()
_parser_loading = asyncio.Lock()


async def load_dicom_parser() -> None:
    """Import pydicom (with numpy, its data dictionaries, ...) in a worker thread.

    Only ingest parses DICOM, so a process that only serves downloads never loads it
    (tens of MB of resident memory); the first upload imports it off the event loop.
    Every other upload waits until that import has *finished*: a module shows in
    ``sys.modules`` as soon as its import starts, and parsing with a half-initialised
    pydicom failed with AttributeError when the first uploads arrived together."""
    if _parser_loaded.is_set():
        return
    async with _parser_loading:
        if not _parser_loaded.is_set():
            await asyncio.to_thread(importlib.import_module, "pydicom.filereader")
            _parser_loaded.set()


def not_accepted(label: str, index: int, reason: str) -> UnsupportedMediaType:
    return UnsupportedContent(
        f"{label!r}: {reason}",
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


def _uid_text(raw: bytes) -> str:
    """A UI value as text: trailing NUL (the standard's padding) and spaces removed."""
    return raw.decode("ascii", errors="replace").rstrip("\0 ")


def uid_problem(value: str) -> str | None:
    """Why ``value`` is not a valid UID, or ``None``."""
    if len(value) > _UID_MAX:
        return f"is longer than {_UID_MAX} characters"
    if not _UID.fullmatch(value):
        return "is not a valid UID (digits and dots, no leading zeros in a component)"
    return None


class DicomProbe:
    """Checks one DICOM part while it streams.

    :meth:`feed` the first chunks until it returns the header (or the part ends:
    :meth:`finish`); then pass the part's remaining chunks through :meth:`rest`, which
    yields the whole file, checks the rest of its structure on the way and refuses it
    (raising) if it ends badly."""

    def __init__(self, *, label: str, index: int, limit: int) -> None:
        self.label = label
        self.index = index
        self.limit = limit
        self.buffer = bytearray()  # the file's bytes until the header is known
        self._meta: FileMeta | None = None
        self._transfer_syntax = ""
        self._walker: DatasetWalker | None = None
        self._dataset = bytearray()  # dataset bytes (inflated) until the header is known
        self._header: DicomHeader | None = None
        self._closed = False

    # -- streaming ---------------------------------------------------------------------

    def feed(self, chunk: bytes) -> DicomHeader | None:
        self.buffer += chunk
        if self._walker is None:
            self._start(final=False)
            if self._walker is None:
                if len(self.buffer) > self.limit:
                    raise self._refuse(f"no complete file meta within the first {self.limit} bytes")
                return None
        else:
            self._walk(chunk)
        return self._header_if_known(final=False)

    def finish(self) -> DicomHeader:
        """The part ended before the header was known: the whole file is in the buffer."""
        if self._walker is None:
            self._start(final=True)
        self._close()
        header = self._header_if_known(final=True)
        assert header is not None
        return header

    async def rest(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The whole file: the buffered start, then ``chunks``, each walked before it is
        passed on; the end of the file is checked before the last byte is handed over."""
        start = bytes(self.buffer)
        self.buffer = bytearray()
        pending = start
        async for chunk in chunks:
            self._walk(chunk)
            if pending:
                yield pending
            pending = chunk
        self._close()
        if pending:
            yield pending

    # -- steps -------------------------------------------------------------------------

    def _start(self, *, final: bool) -> None:
        try:
            meta = read_file_meta(self.buffer, final=final)
        except NotDicom as exc:
            raise self._refuse(str(exc)) from None
        except StructureError as exc:
            raise self._refuse(f"malformed DICOM file meta information: {exc}") from None
        if meta is None:
            if final:  # not expected: the whole file is there to decide on
                raise self._refuse("malformed DICOM file meta information")
            return
        self._meta = meta
        self._check_meta(meta)
        syntax = self._transfer_syntax
        deflated = syntax == DEFLATED
        if not deflated:
            try:
                check_meta_ends(self.buffer, meta, little=syntax != EXPLICIT_BIG)
            except StructureError as exc:
                raise self._refuse(f"malformed DICOM file meta information: {exc}") from None
        self._walker = DatasetWalker(
            implicit=syntax == IMPLICIT_LITTLE,
            little=syntax != EXPLICIT_BIG,
            deflated=deflated,
            encapsulated=syntax not in NATIVE,
        )
        self._walk(self.buffer[meta.dataset_offset :])

    def _check_meta(self, meta: FileMeta) -> None:
        for element in _REQUIRED_META:
            if element not in meta.elements or not meta.elements[element][1].strip(b"\0 "):
                raise self._incomplete(
                    f"the file meta information lacks {describe_tag(0x00020000 | element)}"
                )
        for element in _META_UIDS:
            vr, raw = meta.elements[element]
            name = describe_tag(0x00020000 | element)
            if vr != b"UI":
                raise self._invalid(f"{name} has VR {vr.decode('ascii', 'replace')}, not UI")
            problem = uid_problem(_uid_text(raw))
            if problem:
                raise self._invalid(f"{name} {_uid_text(raw)!r} {problem}")
        self._transfer_syntax = _uid_text(meta.elements[0x0010][1])
        if self._transfer_syntax not in ACCEPTED_TRANSFER_SYNTAXES:
            raise self._refuse(
                f"TransferSyntaxUID (0002,0010) {self._transfer_syntax} is not a transfer "
                "syntax this archive accepts"
            )

    def _walk(self, data: bytes | bytearray) -> None:
        assert self._walker is not None
        sink = self._keep if self._header is None else None
        try:
            self._walker.feed(data, sink)
        except StructureError as exc:
            raise self._refuse(f"malformed DICOM dataset: {exc}") from None

    def _keep(self, piece: bytes) -> None:
        """Dataset bytes, kept until the header is read (only up to the pixel data)."""
        assert self._walker is not None
        end = self._walker.pixel_offset
        if end is not None and len(self._dataset) >= end:
            return
        self._dataset += piece
        if end is None and len(self._dataset) > self.limit:
            raise self._refuse(
                f"the DICOM header (everything before PixelData) exceeds {self.limit} bytes"
            )

    def _close(self) -> None:
        if self._closed:
            return
        assert self._walker is not None
        try:
            self._walker.close()
        except StructureError as exc:
            raise self._refuse(f"malformed DICOM dataset: {exc}") from None
        self._closed = True

    def _header_if_known(self, *, final: bool) -> DicomHeader | None:
        if self._header is not None:
            return self._header
        assert self._walker is not None
        assert self._meta is not None
        end = self._walker.pixel_offset
        if end is None and not final:
            return None
        if end is not None and end > self.limit:
            raise self._refuse(
                f"the DICOM header (everything before PixelData) exceeds {self.limit} bytes"
            )
        dataset = bytes(self._dataset if end is None else self._dataset[:end])
        self._dataset = bytearray()
        self._header = self._read_header(dataset, self._meta)
        return self._header

    def _read_header(self, data: bytes, meta: FileMeta) -> DicomHeader:
        from pydicom.filereader import read_dataset

        syntax = self._transfer_syntax
        try:
            with warnings.catch_warnings():
                # Real-world files carry many harmless irregularities pydicom warns about.
                warnings.simplefilter("ignore")
                dataset = read_dataset(
                    io.BytesIO(data),
                    is_implicit_VR=syntax == IMPLICIT_LITTLE,
                    is_little_endian=syntax != EXPLICIT_BIG,
                )
                fields = self._fields(dataset)
        except UnprocessableContent:
            raise
        except Exception as exc:  # any parser failure means "not an acceptable DICOM file"
            raise self._refuse(f"DICOM header cannot be parsed ({type(exc).__name__})") from None
        self._check_consistent(fields, meta)
        return DicomHeader(**fields)

    def _fields(self, dataset: Dataset) -> dict[str, Any]:
        uids: dict[str, str] = {}
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            value = dataset.get(keyword)
            text = "" if value is None else str(value).rstrip("\0 ")
            if not text:
                raise self._incomplete(f"the DICOM dataset lacks {keyword}")
            problem = uid_problem(text)
            if problem:
                raise self._invalid(f"{keyword} {text!r} {problem}")
            uids[keyword] = text
        return {
            "sop_class_uid": uids["SOPClassUID"],
            "sop_instance_uid": uids["SOPInstanceUID"],
            "transfer_syntax_uid": self._transfer_syntax,
            "study_instance_uid": uids["StudyInstanceUID"],
            "series_instance_uid": uids["SeriesInstanceUID"],
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

    def _check_consistent(self, fields: dict[str, Any], meta: FileMeta) -> None:
        pairs = (
            (0x0002, "SOPClassUID", fields["sop_class_uid"]),
            (0x0003, "SOPInstanceUID", fields["sop_instance_uid"]),
        )
        for element, keyword, value in pairs:
            announced = _uid_text(meta.elements[element][1])
            if announced != value:
                raise self._invalid(
                    f"{describe_tag(0x00020000 | element)} {announced!r} differs from "
                    f"{keyword} {value!r} of the dataset"
                )

    # -- answers -----------------------------------------------------------------------

    def _refuse(self, reason: str) -> UnsupportedMediaType:
        return not_accepted(self.label, self.index, reason)

    def _incomplete(self, reason: str) -> UnprocessableContent:
        return DicomIncomplete(
            f"{self.label!r}: {reason}",
            part=self.label,
            part_index=self.index,
        )

    def _invalid(self, reason: str) -> UnprocessableContent:
        return DicomInvalid(
            f"{self.label!r}: {reason}",
            part=self.label,
            part_index=self.index,
        )
