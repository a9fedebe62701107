"""The DICOMDIR of a storage archive is encoded without pydicom (a download neither pays
for pydicom's writer nor needs it in memory); it must be byte for byte what pydicom's
own writer produces for the same elements. Checked on varied metadata: non-Latin and
Latin-1 names, values to clean up, placeholders, several patients, studies and series."""

from __future__ import annotations

import random
import struct
import sys
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from hds_common.pdi import PdiInstance, PdiPatient, PdiSeries, PdiStudy, pdi_layout

NAMES = [
    "Doe^Jane",
    "Müller^Jürgen",
    "Παπαδόπουλος^Νίκος",
    "山田^太郎=ヤマダ^タロウ",
    "x" * 90,
    "",
    " spaced ",
    "A=B=C=D",
    "ctl\x01\x1f\\back",
    "Ærø^Ødegård^^^Jr",
    "€uro",
    "ß" * 70,
]
TEXTS = ["", "CT Thorax", "Ü" * 20, "Ωμέγα", "12345678901234567890", "a\\b", "Bauch\tBecken"]
DATES = ["20240101", "", "bogus", "20241301", "20200229", " 20230101 "]
TIMES = ["101500", "", "12:30:00", "235959.123456", "25", "1015"]
SEXES = ["M", "F", "O", "X", "", " f "]
MODALITIES = ["CT", "mr", "", "SEG!", "verylongmodalityname"]
NUMBERS = [None, 0, 1, 7, -3, 2**31, 2**31 - 1, 123456]
SOP_CLASSES = ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.88.11"]
SYNTAXES = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2"]


def _patients(rng: random.Random, case: int) -> list[PdiPatient]:
    counter = iter(range(1, 10**6))

    def uid(root: str) -> str:
        return f"{root}.{case}.{next(counter)}" + "7" * rng.randint(0, 30)

    def instances() -> tuple[PdiInstance, ...]:
        return tuple(
            PdiInstance(
                f"object-{next(counter)}",
                rng.choice(SOP_CLASSES),
                uid("1.2.3"),
                rng.choice(SYNTAXES),
                rng.choice(NUMBERS),
                rng.randint(0, 10**6),
                rng.randint(0, 2**32 - 1),
            )
            for _ in range(rng.randint(1, 4))
        )

    def studies() -> tuple[PdiStudy, ...]:
        return tuple(
            PdiStudy(
                uid("1.2.5"),
                rng.choice(DATES),
                rng.choice(TIMES),
                rng.choice(TEXTS + NAMES),
                rng.choice(TEXTS),
                rng.choice(TEXTS),
                tuple(
                    PdiSeries(
                        uid("1.2.4"), rng.choice(MODALITIES), rng.choice(NUMBERS), instances()
                    )
                    for _ in range(rng.randint(1, 3))
                ),
            )
            for _ in range(rng.randint(1, 2))
        )

    return [
        PdiPatient(
            rng.choice(["", f"PID-{case}-{n}", f"Ü-{n}", f"山田{n}", "x" * 80 + str(n)]),
            rng.choice(NAMES),
            rng.choice(DATES),
            rng.choice(SEXES),
            studies(),
        )
        for n in range(rng.randint(1, 3))
    ]


def _fresh(value: Any) -> Any:
    """The element value as a plain Python value, so pydicom encodes it from scratch
    (values it read keep their original bytes, which would make the check circular)."""
    if isinstance(value, MultiValue):
        return [_fresh(v) for v in value]
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def _copy(source: Dataset, target: Dataset) -> Dataset:
    for element in source:
        target.add_new(element.tag, element.VR, _fresh(element.value))
    return target


def _encoded(dataset: Dataset) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_dataset(buffer, dataset)
    return buffer.getvalue()


def _pydicom_encoding(dicomdir: bytes) -> bytes:
    """The same DICOMDIR with every element encoded by pydicom's writer."""
    parsed = dcmread(DicomBytesIO(dicomdir))
    meta = DicomBytesIO()
    meta.is_little_endian = True
    meta.is_implicit_VR = False
    meta.write(b"\x00" * 128 + b"DICM")
    file_meta = FileMetaDataset()
    _copy(parsed.file_meta, file_meta)
    write_file_meta_info(meta, file_meta, enforce_standard=True)
    top = Dataset()
    for keyword in (
        "FileSetID",
        "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity",
        "OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity",
        "FileSetConsistencyFlag",
    ):
        element = parsed[keyword]
        top.add_new(element.tag, element.VR, _fresh(element.value))
    items = b""
    for record in parsed.DirectoryRecordSequence:
        encoded = _encoded(_copy(record, Dataset()))
        items += b"\xfe\xff\x00\xe0" + struct.pack("<I", len(encoded)) + encoded
    sequence = struct.pack("<HH", 0x0004, 0x1220) + b"SQ\x00\x00" + struct.pack("<I", len(items))
    return meta.getvalue() + _encoded(top) + sequence + items


@pytest.mark.parametrize("seed", range(4))
def test_dicomdir_is_exactly_what_pydicom_writes(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for case in range(40):
        patients = _patients(rng, case)
        try:
            entries = pdi_layout(patients, [], readme_text="README")
        except ValueError:
            continue  # e.g. two patients reduced to the same Patient ID
        dicomdir = entries[0].data
        assert dicomdir is not None
        assert dicomdir == _pydicom_encoding(dicomdir)
        checked += 1
    assert checked >= 25


def test_serving_an_archive_does_not_need_pydicom() -> None:
    pydicom_modules = [name for name in sys.modules if name.split(".")[0] == "pydicom"]
    saved = {name: sys.modules.pop(name) for name in pydicom_modules}
    try:
        sys.modules["pydicom"] = None  # type: ignore[assignment]  # any import now fails
        patients = _patients(random.Random(99), 0)
        entries = pdi_layout(patients[:1], [], readme_text="README")
        assert entries[0].name == "DICOMDIR"
    finally:
        del sys.modules["pydicom"]
        sys.modules.update(saved)
