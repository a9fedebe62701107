"""DICOMDIR (Media Storage Directory, PS3.10 / PS3.3 Annex F) built from index metadata.

The DICOMDIR is encoded by hand at the *structure* level (file meta, the four
top-level elements, the Directory Record Sequence with its item headers) while
every element inside uses pydicom's own encoder. Writing the sequence
ourselves means we know the absolute byte position of each item, so the
record offsets are exact by construction. All offset values are UL, i.e. of
fixed width: encoding each record once with zero offsets yields its final
length, and the real offsets are then written into those fixed slots.

Every instance gets an IMAGE record. PS3.3 F.4 would want SR DOCUMENT, KEY
OBJECT DOC, PRESENTATION, ENCAP DOC, ... records for non-image SOP classes,
but their mandatory keys (Content Date/Time, Concept Name Code Sequence,
Completion/Verification Flag, ...) are not in the metadata index. An IMAGE
record with the correct Referenced SOP Class UID is what many CD burners write
in that situation and what viewers handle; dciodvfy accepts it.

Type 1 keys the index lacks are filled with deterministic placeholders (see
``_UNKNOWN_*`` and the fallbacks in ``_build_tree``) instead of failing the
download.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID, ExplicitVRLittleEndian, MediaStorageDirectoryStorage

from ._model import PdiPatient, canonical_patients

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "build_dicomdir",
    "is_legal_file_id",
    "validate_file_id",
]

# A fixed, self-assigned implementation UID: a "2.25." UUID derived UID needs no
# registered org root and stays identical across releases, which keeps the
# DICOMDIR bytes (and hence the ZIP ETag) stable.
IMPLEMENTATION_CLASS_UID = (
    f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, 'urn:hds-suite:hds_common.pdi').int}"
)
IMPLEMENTATION_VERSION_NAME = "HDS_PDI_1"

# PS3.10 8.2: each component of a File ID is 1-8 characters from the
# uppercase letters, digits and underscore (a subset of CS), at most 8 levels.
_FILE_ID_COMPONENT = re.compile(r"[A-Z0-9_]{1,8}")
_MAX_FILE_ID_COMPONENTS = 8

_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_DATE = re.compile(r"[0-9]{8}")
_TIME = re.compile(r"(?:[01][0-9]|2[0-3])(?:[0-5][0-9](?:[0-5][0-9](?:\.[0-9]{1,6})?)?)?")
# Control characters are not allowed in the string VRs we emit and the
# backslash is the DICOM value separator (it would turn one value into many).
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x1f\x7f\\]")
_CS_FORBIDDEN = re.compile(r"[^A-Z0-9 _]")

# Placeholders for Type 1 record keys the index does not know. PS3.3 F.5
# makes them mandatory, and an empty Type 1 value would make the whole
# DICOMDIR non-conformant; 19000101 is the conventional "unknown" date that
# viewers show as such, it is deterministic (unlike "today").
_UNKNOWN_DATE = "19000101"
_UNKNOWN_TIME = "000000"
_UNKNOWN_MODALITY = "OT"
_IS_MIN, _IS_MAX = -(2**31), 2**31 - 1

_ITEM_TAG = b"\xfe\xff\x00\xe0"  # (FFFE,E000) little endian
_DIRECTORY_RECORD_SEQUENCE_HEADER = struct.pack("<HH", 0x0004, 0x1220) + b"SQ\x00\x00"
_SEQUENCE_HEADER_LEN = len(_DIRECTORY_RECORD_SEQUENCE_HEADER) + 4
_ITEM_HEADER_LEN = 8
# Explicit VR little endian headers of the two offset elements. Every record
# starts with (0004,1400) UL, (0004,1410) US, (0004,1420) UL (lowest tags,
# written in ascending order), so their values sit at fixed positions: they are
# patched in place once the offsets are known instead of encoding twice, which
# halves the cost for file-sets with tens of thousands of records.
_NEXT_ELEMENT_HEADER = struct.pack("<HH", 0x0004, 0x1400) + b"UL" + struct.pack("<H", 4)
_LOWER_ELEMENT_HEADER = struct.pack("<HH", 0x0004, 0x1420) + b"UL" + struct.pack("<H", 4)
_NEXT_VALUE_AT = 8  # after tag, VR and length of the first element
_LOWER_VALUE_AT = 12 + 10 + 8  # after (0004,1400) UL and (0004,1410) US elements
_RECORD_IN_USE = 0xFFFF


def is_legal_file_id(components: Sequence[str]) -> bool:
    """True if ``components`` is a PS3.10 conformant File ID."""
    return (
        isinstance(components, Sequence)
        and not isinstance(components, str)
        and 1 <= len(components) <= _MAX_FILE_ID_COMPONENTS
        and all(isinstance(c, str) and _FILE_ID_COMPONENT.fullmatch(c) for c in components)
    )


def validate_file_id(components: Sequence[str]) -> tuple[str, ...]:
    """Return ``components`` as a tuple or raise ValueError if not a legal File ID."""
    if not is_legal_file_id(components):
        raise ValueError(
            f"illegal DICOM file id {components!r}: need 1-{_MAX_FILE_ID_COMPONENTS} "
            "components of 1-8 characters from A-Z, 0-9 and '_'"
        )
    return tuple(components)


# --- value sanitising -------------------------------------------------------
# The index stores what the modality sent, which is not always valid for the
# VR. Values are cleaned rather than rejected so one sloppy header does not
# make a patient's whole download fail; UIDs are the exception (see _uid).


def _charset(texts: Iterable[str]) -> str | None:
    """Specific Character Set needed for ``texts``, None for the default repertoire.

    Latin-1 is preferred when sufficient because it is what German/European
    modalities and many older CD viewers expect; UTF-8 covers the rest.
    """
    joined = "".join(texts)
    if joined.isascii():
        return None
    try:
        joined.encode("latin-1")
    except UnicodeEncodeError:
        return "ISO_IR 192"
    return "ISO_IR 100"


def _codec(charset: str | None) -> str:
    return {None: "ascii", "ISO_IR 100": "latin-1"}.get(charset, "utf-8")


def _clip(value: str, max_bytes: int, codec: str) -> str:
    # Limits are enforced in encoded bytes: for single-byte sets that equals
    # characters, for UTF-8 it is stricter, which satisfies validators that
    # count either way.
    while len(value.encode(codec, errors="replace")) > max_bytes:
        value = value[:-1]
    return value.strip(" ")


def _text(value: str, max_bytes: int, codec: str) -> str:
    return _clip(_FORBIDDEN_TEXT.sub("", value).strip(" "), max_bytes, codec)


def _person_name(value: str, codec: str) -> str:
    groups = _FORBIDDEN_TEXT.sub("", value).split("=")[:3]
    cleaned = ["^".join(group.split("^")[:5]) for group in groups]
    return "=".join(_clip(group, 64, codec) for group in cleaned).rstrip("=")


def _date(value: str) -> str | None:
    value = value.strip()
    if not _DATE.fullmatch(value):
        return None
    try:
        dt.datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return None
    return value


def _time(value: str) -> str | None:
    # ACR-NEMA style "HH:MM:SS" still shows up in old archives.
    value = value.strip().replace(":", "")
    return value if _TIME.fullmatch(value) else None


def _code_string(value: str, max_chars: int = 16) -> str:
    return _CS_FORBIDDEN.sub("", value.strip().upper())[:max_chars].strip()


def _integer_string(value: int | None, fallback: int) -> int:
    return value if value is not None and _IS_MIN <= value <= _IS_MAX else fallback


def _uid(value: str, what: str) -> str:
    # A UID is an identity: silently "fixing" it would make the DICOMDIR
    # point at an instance that does not exist, so refuse instead.
    if len(value) > 64 or not _UID.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}")
    return value


# --- record tree -------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    record: Dataset
    children: list[_Node] = field(default_factory=list)
    offset: int = 0  # file position of the record's item tag
    encoded: bytearray = field(default_factory=bytearray)


def _base_record(record_type: str, charset: str | None) -> Dataset:
    record = Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = _RECORD_IN_USE
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = record_type
    if charset is not None:
        # PS3.3 F.5: Type 1C, required when a key uses a non-default repertoire.
        record.SpecificCharacterSet = charset
    return record


def _patient_record(patient: PdiPatient) -> Dataset:
    charset = _charset((patient.patient_id, patient.patient_name))
    codec = _codec(charset)
    patient_id = _text(patient.patient_id, 64, codec)
    if not patient_id:
        # Type 1 key. Same convention as dcm4che's dcmdir: fall back to the
        # (first) Study Instance UID, which is unique and deterministic.
        patient_id = patient.studies[0].study_instance_uid
    record = _base_record("PATIENT", charset)
    record.PatientName = _person_name(patient.patient_name, codec)
    record.PatientID = patient_id
    birth_date = _date(patient.birth_date)
    if birth_date is not None:
        record.PatientBirthDate = birth_date
    sex = _code_string(patient.sex)
    if sex in {"M", "F", "O"}:
        record.PatientSex = sex
    return record


def _check_unique(seen: set[str], value: str, what: str) -> None:
    if value in seen:
        raise ValueError(f"duplicate {what} {value!r}")
    seen.add(value)


def _build_tree(
    patients: Sequence[PdiPatient], file_ids: Mapping[str, tuple[str, ...]]
) -> list[_Node]:
    seen_patients: set[str] = set()
    seen_studies: set[str] = set()
    seen_series: set[str] = set()
    seen_instances: set[str] = set()
    roots: list[_Node] = []
    study_ordinal = 0
    for patient in patients:
        patient_node = _Node(_patient_record(patient))
        # PS3.3 F.5.1: the Patient ID must be unique within the File-set.
        _check_unique(seen_patients, patient_node.record.PatientID, "PatientID")
        roots.append(patient_node)
        for study in patient.studies:
            study_ordinal += 1
            study_uid = _uid(study.study_instance_uid, "StudyInstanceUID")
            _check_unique(seen_studies, study_uid, "StudyInstanceUID")
            charset = _charset((study.study_description, study.accession_number, study.study_id))
            codec = _codec(charset)
            record = _base_record("STUDY", charset)
            record.StudyDate = _date(study.study_date) or _UNKNOWN_DATE
            record.StudyTime = _time(study.study_time) or _UNKNOWN_TIME
            record.StudyDescription = _text(study.study_description, 64, codec)
            record.StudyInstanceUID = study_uid
            # Type 1 key; the 1-based position in the file-set is deterministic.
            record.StudyID = _text(study.study_id, 16, codec) or str(study_ordinal)
            record.AccessionNumber = _text(study.accession_number, 16, codec)
            study_node = _Node(record)
            patient_node.children.append(study_node)
            for series_ordinal, series in enumerate(study.series, start=1):
                series_uid = _uid(series.series_instance_uid, "SeriesInstanceUID")
                _check_unique(seen_series, series_uid, "SeriesInstanceUID")
                record = _base_record("SERIES", None)
                record.Modality = _code_string(series.modality) or _UNKNOWN_MODALITY
                record.SeriesInstanceUID = series_uid
                record.SeriesNumber = _integer_string(series.series_number, series_ordinal)
                series_node = _Node(record)
                study_node.children.append(series_node)
                for instance_ordinal, instance in enumerate(series.instances, start=1):
                    sop_uid = _uid(instance.sop_instance_uid, "SOPInstanceUID")
                    _check_unique(seen_instances, sop_uid, "SOPInstanceUID")
                    try:
                        file_id = file_ids[sop_uid]
                    except KeyError:
                        raise ValueError(f"no file id for SOPInstanceUID {sop_uid!r}") from None
                    # IMAGE is the only instance-level record type whose
                    # required keys the index can fill (InstanceNumber); see
                    # the module docs for non-image SOP classes.
                    record = _base_record("IMAGE", None)
                    record.ReferencedFileID = list(validate_file_id(file_id))
                    record.ReferencedSOPClassUIDInFile = _uid(instance.sop_class_uid, "SOPClassUID")
                    record.ReferencedSOPInstanceUIDInFile = sop_uid
                    record.ReferencedTransferSyntaxUIDInFile = _uid(
                        instance.transfer_syntax_uid, "TransferSyntaxUID"
                    )
                    record.InstanceNumber = _integer_string(
                        instance.instance_number, instance_ordinal
                    )
                    series_node.children.append(_Node(record))
    return roots


def _preorder(nodes: list[_Node]) -> Iterable[_Node]:
    # The conventional record order (what dcmtk and pydicom write): a parent
    # directly followed by its subtree.
    for node in nodes:
        yield node
        yield from _preorder(node.children)


def _link(siblings: list[_Node]) -> None:
    """Write the next/lower offsets into the already encoded records."""
    for index, node in enumerate(siblings):
        following = siblings[index + 1].offset if index + 1 < len(siblings) else 0
        lower = node.children[0].offset if node.children else 0
        struct.pack_into("<I", node.encoded, _NEXT_VALUE_AT, following)
        struct.pack_into("<I", node.encoded, _LOWER_VALUE_AT, lower)
        _link(node.children)


def _encode_record(record: Dataset) -> bytearray:
    encoded = bytearray(_encode(record))
    # The patch positions above rely on pydicom writing elements in tag order,
    # which PS3.5 7.1 mandates; verify instead of trusting blindly.
    if (
        encoded[_NEXT_VALUE_AT - 8 : _NEXT_VALUE_AT] != _NEXT_ELEMENT_HEADER
        or encoded[_LOWER_VALUE_AT - 8 : _LOWER_VALUE_AT] != _LOWER_ELEMENT_HEADER
    ):  # pragma: no cover - would be a pydicom change
        raise AssertionError("unexpected directory record encoding")
    return encoded


def _new_buffer() -> DicomBytesIO:
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    return buffer


def _encode(dataset: Dataset) -> bytes:
    buffer = _new_buffer()
    write_dataset(buffer, dataset)
    return buffer.getvalue()


def _file_meta(instance_uid: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = UID(instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    buffer = _new_buffer()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue()


def _header(file_set_id: str, first: int, last: int) -> bytes:
    ds = Dataset()
    ds.FileSetID = file_set_id
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = first
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = last
    ds.FileSetConsistencyFlag = 0  # no known inconsistencies
    return _encode(ds)


def build_dicomdir(
    patients: Sequence[PdiPatient], file_ids: Mapping[str, tuple[str, ...]]
) -> bytes:
    """Encode the DICOMDIR for ``patients``.

    ``file_ids`` maps each SOP Instance UID to its File ID components (e.g.
    ``("DICOM", "ST000001", "SE000001", "IM000001")``). Records are written in
    canonical order (see :func:`canonical_patients`), so the output depends only
    on the content, never on input order, time or randomness.

    Raises ValueError for illegal file ids, invalid or duplicate UIDs and
    instances without a file id.
    """
    roots = _build_tree(canonical_patients(patients), file_ids)
    nodes = list(_preorder(roots))

    # Encode with zero offsets. The lengths are final (UL is fixed width) and
    # the bytes fully describe the content: in a strict
    # PATIENT/STUDY/SERIES/IMAGE hierarchy the pre-order sequence of records
    # implies the tree, so the digest can name the file-set.
    digest = hashlib.sha256()
    for node in nodes:
        node.encoded = _encode_record(node.record)
        digest.update(struct.pack("<I", len(node.encoded)) + node.encoded)
    content_hash = digest.hexdigest()
    # CS, max 16 chars; a fixed length keeps the header length independent of
    # the value, which the offset computation below relies on.
    file_set_id = f"PDI_{content_hash[:12].upper()}"
    instance_uid = f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, content_hash).int}"

    meta = _file_meta(instance_uid)
    header_len = len(_header(file_set_id, 0, 0))
    # PS3.3 F.3.2.1: offsets count from the first byte of the File Meta
    # Information, which (PS3.10 7.1) starts with the 128 byte preamble, i.e.
    # they are plain file positions.
    position = len(meta) + header_len + _SEQUENCE_HEADER_LEN
    for node in nodes:
        node.offset = position
        position += _ITEM_HEADER_LEN + len(node.encoded)
    sequence_len = position - (len(meta) + header_len + _SEQUENCE_HEADER_LEN)
    if sequence_len > 0xFFFFFFFE:
        raise ValueError("file-set too large for a single DICOMDIR")

    # Patch in the real offsets, then emit the bytes in file order.
    _link(roots)
    first = roots[0].offset if roots else 0
    last = roots[-1].offset if roots else 0
    parts = [
        meta,
        _header(file_set_id, first, last),
        _DIRECTORY_RECORD_SEQUENCE_HEADER,
        struct.pack("<I", sequence_len),
    ]
    for node in nodes:
        parts.append(_ITEM_TAG + struct.pack("<I", len(node.encoded)))
        parts.append(bytes(node.encoded))
    return b"".join(parts)
