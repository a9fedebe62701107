"""DICOMDIR (Media Storage Directory, PS3.10 / PS3.3 Annex F) built from index metadata.

The DICOMDIR is encoded by hand, in Explicit VR Little Endian: the file meta,
the four top-level elements, the Directory Record Sequence with its item
headers and the few element types a record holds (UL, US, CS, DA, TM, SH, LO,
PN, UI, IS). Writing the sequence ourselves means we know the absolute byte
position of each item, so the record offsets are exact by construction. All
offset values are UL, i.e. of fixed width: encoding each record once with zero
offsets yields its final length, and the real offsets are then written into
those fixed slots. The bytes are exactly what pydicom's writer produces for the
same elements (the tests compare them), at a small fraction of the cost: a
download of thousands of instances builds its DICOMDIR before the first byte
goes out, and serving it does not need pydicom (and numpy) in memory.

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

_MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"
_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

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


# --- element encoding ----------------------------------------------------------
# Explicit VR little endian (PS3.5 7.1.2): tag, VR, 16-bit length, value padded
# to even length (UI with NUL, text with a space, PS3.5 6.2); OB has a 32-bit
# length after two reserved bytes. Elements must be written in ascending tag
# order, which the record builders below do by construction.

_TAG_VR_LENGTH = struct.Struct("<HH2sH")
_UL_VALUE = struct.Struct("<I")
_US_VALUE = struct.Struct("<H")


def _element(group: int, element: int, vr: bytes, value: bytes, pad: bytes = b" ") -> bytes:
    if len(value) % 2:
        value += pad
    return _TAG_VR_LENGTH.pack(group, element, vr, len(value)) + value


def _ul(group: int, element: int, value: int) -> bytes:
    return _element(group, element, b"UL", _UL_VALUE.pack(value))


def _us(group: int, element: int, value: int) -> bytes:
    return _element(group, element, b"US", _US_VALUE.pack(value))


def _ui(group: int, element: int, value: str) -> bytes:
    return _element(group, element, b"UI", value.encode("ascii"), b"\x00")


def _string(group: int, element: int, vr: bytes, value: str, codec: str = "ascii") -> bytes:
    return _element(group, element, vr, value.encode(codec))


def _record_start(record_type: str, charset: str | None) -> bytearray:
    # (0004,1400) next, (0004,1410) in use, (0004,1420) lower: see _NEXT_VALUE_AT.
    encoded = bytearray(_RECORD_PREFIX)
    encoded += _string(0x0004, 0x1430, b"CS", record_type)
    if charset is not None:
        # PS3.3 F.5: Type 1C, required when a key uses a non-default repertoire.
        encoded += _string(0x0008, 0x0005, b"CS", charset)
    return encoded


_RECORD_PREFIX = (
    _ul(0x0004, 0x1400, 0) + _us(0x0004, 0x1410, _RECORD_IN_USE) + _ul(0x0004, 0x1420, 0)
)
assert _RECORD_PREFIX[_NEXT_VALUE_AT - 8 : _NEXT_VALUE_AT] == _NEXT_ELEMENT_HEADER
assert _RECORD_PREFIX[_LOWER_VALUE_AT - 8 : _LOWER_VALUE_AT] == _LOWER_ELEMENT_HEADER
_IMAGE_RECORD_START = bytes(_record_start("IMAGE", None))
_SERIES_RECORD_START = bytes(_record_start("SERIES", None))


# --- record tree -------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    encoded: bytearray  # the record's elements, offsets still zero until _link
    children: list[_Node] = field(default_factory=list)
    offset: int = 0  # file position of the record's item tag


def _patient_record(patient: PdiPatient) -> tuple[str, bytearray]:
    """The PATIENT record and its Patient ID."""
    charset = _charset((patient.patient_id, patient.patient_name))
    codec = _codec(charset)
    patient_id = _text(patient.patient_id, 64, codec)
    if not patient_id:
        # Type 1 key. Same convention as dcm4che's dcmdir: fall back to the
        # (first) Study Instance UID, which is unique and deterministic.
        patient_id = patient.studies[0].study_instance_uid
    record = _record_start("PATIENT", charset)
    record += _string(0x0010, 0x0010, b"PN", _person_name(patient.patient_name, codec), codec)
    record += _string(0x0010, 0x0020, b"LO", patient_id, codec)
    birth_date = _date(patient.birth_date)
    if birth_date is not None:
        record += _string(0x0010, 0x0030, b"DA", birth_date)
    sex = _code_string(patient.sex)
    if sex in {"M", "F", "O"}:
        record += _string(0x0010, 0x0040, b"CS", sex)
    return patient_id, record


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
        patient_id, patient_record = _patient_record(patient)
        # PS3.3 F.5.1: the Patient ID must be unique within the File-set.
        _check_unique(seen_patients, patient_id, "PatientID")
        patient_node = _Node(patient_record)
        roots.append(patient_node)
        for study in patient.studies:
            study_ordinal += 1
            study_uid = _uid(study.study_instance_uid, "StudyInstanceUID")
            _check_unique(seen_studies, study_uid, "StudyInstanceUID")
            charset = _charset((study.study_description, study.accession_number, study.study_id))
            codec = _codec(charset)
            record = _record_start("STUDY", charset)
            record += _string(0x0008, 0x0020, b"DA", _date(study.study_date) or _UNKNOWN_DATE)
            record += _string(0x0008, 0x0030, b"TM", _time(study.study_time) or _UNKNOWN_TIME)
            record += _string(
                0x0008, 0x0050, b"SH", _text(study.accession_number, 16, codec), codec
            )
            record += _string(
                0x0008, 0x1030, b"LO", _text(study.study_description, 64, codec), codec
            )
            record += _ui(0x0020, 0x000D, study_uid)
            # Type 1 key; the 1-based position in the file-set is deterministic.
            study_id = _text(study.study_id, 16, codec) or str(study_ordinal)
            record += _string(0x0020, 0x0010, b"SH", study_id, codec)
            study_node = _Node(record)
            patient_node.children.append(study_node)
            for series_ordinal, series in enumerate(study.series, start=1):
                series_uid = _uid(series.series_instance_uid, "SeriesInstanceUID")
                _check_unique(seen_series, series_uid, "SeriesInstanceUID")
                record = bytearray(_SERIES_RECORD_START)
                modality = _code_string(series.modality) or _UNKNOWN_MODALITY
                record += _string(0x0008, 0x0060, b"CS", modality)
                record += _ui(0x0020, 0x000E, series_uid)
                series_number = _integer_string(series.series_number, series_ordinal)
                record += _string(0x0020, 0x0011, b"IS", str(series_number))
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
                    record = bytearray(_IMAGE_RECORD_START)
                    record += _string(0x0004, 0x1500, b"CS", "\\".join(validate_file_id(file_id)))
                    record += _ui(0x0004, 0x1510, _uid(instance.sop_class_uid, "SOPClassUID"))
                    record += _ui(0x0004, 0x1511, sop_uid)
                    record += _ui(
                        0x0004,
                        0x1512,
                        _uid(instance.transfer_syntax_uid, "TransferSyntaxUID"),
                    )
                    number = _integer_string(instance.instance_number, instance_ordinal)
                    record += _string(0x0020, 0x0013, b"IS", str(number))
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


def _file_meta(instance_uid: str) -> bytes:
    # PS3.10 7.1: preamble, "DICM", then group 0002 led by its group length.
    elements = b"".join(
        (
            # OB has the long length form: two reserved bytes, then a UL length.
            struct.pack("<HH2s2xI", 0x0002, 0x0001, b"OB", 2) + b"\x00\x01",
            _ui(0x0002, 0x0002, _MEDIA_STORAGE_DIRECTORY_STORAGE),
            _ui(0x0002, 0x0003, instance_uid),
            _ui(0x0002, 0x0010, _EXPLICIT_VR_LITTLE_ENDIAN),
            _ui(0x0002, 0x0012, IMPLEMENTATION_CLASS_UID),
            _string(0x0002, 0x0013, b"SH", IMPLEMENTATION_VERSION_NAME),
        )
    )
    return b"\x00" * 128 + b"DICM" + _ul(0x0002, 0x0000, len(elements)) + elements


def _header(file_set_id: str, first: int, last: int) -> bytes:
    return b"".join(
        (
            _string(0x0004, 0x1130, b"CS", file_set_id),
            _ul(0x0004, 0x1200, first),
            _ul(0x0004, 0x1202, last),
            _us(0x0004, 0x1212, 0),  # File-set Consistency Flag: no known inconsistencies
        )
    )


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

    # Encoded with zero offsets. The lengths are final (UL is fixed width) and
    # the bytes fully describe the content: in a strict
    # PATIENT/STUDY/SERIES/IMAGE hierarchy the pre-order sequence of records
    # implies the tree, so the digest can name the file-set.
    digest = hashlib.sha256()
    for node in nodes:
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
    parts: list[bytes | bytearray] = [
        meta,
        _header(file_set_id, first, last),
        _DIRECTORY_RECORD_SEQUENCE_HEADER,
        struct.pack("<I", sequence_len),
    ]
    for node in nodes:
        parts.append(_ITEM_TAG + struct.pack("<I", len(node.encoded)))
        parts.append(node.encoded)
    return b"".join(parts)
