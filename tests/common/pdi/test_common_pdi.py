"""Tests for hds_common.pdi: IHE PDI layout, DICOMDIR and the ranged, deterministic ZIP."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.fileset import FileSet
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from hds_common.pdi import (
    PdiDocument,
    PdiInstance,
    PdiPatient,
    PdiSeries,
    PdiStudy,
    RangeNotSatisfiable,
    ZipEntrySpec,
    ZipPlan,
    ZipStreamError,
    build_dicomdir,
    content_range,
    is_legal_file_id,
    parse_range_header,
    pdi_layout,
    plan_zip,
    stream_zip,
)
from hds_common.testing.dicom import make_dicom

T = TypeVar("T")

README = "Ihre Bilder / Your images\n\nÖffnen Sie DICOMDIR mit einem DICOM-Betrachter.\n"
PDF_BYTES = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n"


# --- synthetic corpus ---------------------------------------------------------


@dataclass
class Corpus:
    patients: list[PdiPatient]
    documents: list[PdiDocument]
    blobs: dict[str, bytes]  # object_id -> plaintext
    sources: dict[str, Path]  # sop_instance_uid -> written file
    calls: list[tuple[str, int, int]] = field(default_factory=list)

    def open_object(self, chunk: int = 4096) -> Callable[[str, int, int], AsyncIterator[bytes]]:
        async def open_object(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
            self.calls.append((object_id, offset, length))
            data = self.blobs[object_id]
            assert 0 <= offset
            assert offset + length <= len(data)
            for pos in range(offset, offset + length, chunk):
                yield data[pos : min(pos + chunk, offset + length)]

        return open_object


def _uid(*parts: object) -> str:
    # Deterministic UIDs so the corpus (and thus every archive) is reproducible.
    return generate_uid(entropy_srcs=["hds-pdi-test", *map(str, parts)])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("source")
    name, patient_id, birth_date, sex = "Müller^Jürgen", "PAT-0001", "19600214", "M"
    # 2 studies, 3 series, 12 instances (CT 5 + CT 3, MR 4).
    layout = [
        (
            ("20240305", "101500", "CT Schädel nativ", "ACC0001", "1001"),
            [("CT", 1, 5, CTImageStorage), ("CT", 2, 3, CTImageStorage)],
        ),
        (
            ("20231120", "083000", "MRT Knie rechts", "ACC0002", "1002"),
            [("MR", 1, 4, MRImageStorage)],
        ),
    ]
    blobs: dict[str, bytes] = {}
    sources: dict[str, Path] = {}
    studies: list[PdiStudy] = []
    for study_index, (study_keys, series_defs) in enumerate(layout):
        study_date, study_time, description, accession, study_id = study_keys
        study_uid = _uid("study", study_index)
        series_list: list[PdiSeries] = []
        for series_index, (modality, series_number, count, sop_class) in enumerate(series_defs):
            series_uid = _uid("series", study_index, series_index)
            instances: list[PdiInstance] = []
            for number in range(1, count + 1):
                sop_uid = _uid("instance", study_index, series_index, number)
                data = make_dicom(
                    character_set="ISO_IR 100",
                    patient_name=name,
                    patient_id=patient_id,
                    birth_date=birth_date,
                    sex=sex,
                    study_uid=study_uid,
                    study_date=study_date,
                    study_time=study_time,
                    study_description=description,
                    accession_number=accession,
                    study_id=study_id,
                    series_uid=series_uid,
                    modality=modality,
                    series_number=series_number,
                    sop_uid=sop_uid,
                    sop_class=sop_class,
                    instance_number=number,
                    rows=64,
                    columns=64,
                    seed=number + 1000 * series_number,
                ).data
                path = root / f"{sop_uid}.dcm"
                path.write_bytes(data)
                object_id = f"obj-{sop_uid}"
                blobs[object_id] = data
                sources[sop_uid] = path
                instances.append(
                    PdiInstance(
                        object_id=object_id,
                        sop_class_uid=sop_class,
                        sop_instance_uid=sop_uid,
                        transfer_syntax_uid=ExplicitVRLittleEndian,
                        instance_number=number,
                        size=len(data),
                        crc32=zlib.crc32(data),
                    )
                )
            series_list.append(PdiSeries(series_uid, modality, series_number, tuple(instances)))
        studies.append(PdiStudy(study_uid, *study_keys, series=tuple(series_list)))
    blobs["obj-report-1"] = PDF_BYTES
    documents = [
        PdiDocument("obj-report-1", "Befund CT Schädel", len(PDF_BYTES), zlib.crc32(PDF_BYTES))
    ]
    patients = [PdiPatient(patient_id, name, birth_date, sex, tuple(studies))]
    return Corpus(patients, documents, blobs, sources)


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    # A private loop instead of asyncio.run(), which would reset the thread's
    # current event loop underneath pytest-asyncio's session loop.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def _collect(
    plan: ZipPlan,
    open_object: Callable[[str, int, int], AsyncIterator[bytes]],
    start: int = 0,
    end: int | None = None,
) -> bytes:
    out = bytearray()
    async for chunk in stream_zip(plan, open_object, start, end):
        out += chunk
    return bytes(out)


@pytest.fixture(scope="module")
def plan(corpus: Corpus) -> ZipPlan:
    return plan_zip(pdi_layout(corpus.patients, corpus.documents, readme_text=README))


@pytest.fixture(scope="module")
def archive(plan: ZipPlan, corpus: Corpus) -> bytes:
    return _run_sync(_collect(plan, corpus.open_object()))


@pytest.fixture(scope="module")
def extracted(archive: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("extracted")
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        zf.extractall(target)
    return target


def _dicom_names(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("DICOM/")]


def _run_dciodvfy(path: Path) -> str:
    binary = shutil.which("dciodvfy")
    assert binary is not None, "dciodvfy (Debian package dicom3tools) must be installed"
    result = subprocess.run(
        [binary, str(path)], capture_output=True, text=True, errors="replace", timeout=120
    )
    output = result.stdout + result.stderr
    print(output)  # visible with -s: the warnings are part of the evidence
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    assert errors == [], output
    return output


# --- archive structure ------------------------------------------------------------


def test_archive_is_exact_size_and_valid_zip(archive: bytes, plan: ZipPlan) -> None:
    assert len(archive) == plan.total_size
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names[:2] == ["DICOMDIR", "README.TXT"]
        assert names[-1] == "IHE_PDI/REPORT01.PDF"
        assert len(_dicom_names(names)) == 12
        assert names[2:14] == _dicom_names(names)  # DICOM files before reports
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.flag_bits & 0x0800 == 0  # ASCII names only here
        assert zf.read("IHE_PDI/REPORT01.PDF") == PDF_BYTES
        readme = zf.read("README.TXT")
        assert readme.decode("utf-8") == README.replace("\n", "\r\n")
    assert not plan.zip64


def test_dicom_members_byte_identical_to_sources(
    archive: bytes, plan: ZipPlan, corpus: Corpus
) -> None:
    by_object = {
        i.object_id: i.sop_instance_uid
        for p in corpus.patients
        for st in p.studies
        for se in st.series
        for i in se.instances
    }
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        seen = set()
        for entry in plan.entries:
            if entry.object_id in by_object:
                source = corpus.sources[by_object[entry.object_id]].read_bytes()
                member = zf.read(entry.name)
                assert hashlib.sha256(member).digest() == hashlib.sha256(source).digest()
                # The member really is the instance the name was assigned to.
                assert (
                    pydicom.dcmread(io.BytesIO(member)).SOPInstanceUID == by_object[entry.object_id]
                )
                seen.add(entry.object_id)
    assert seen == set(by_object)


def test_file_ids_are_legal(plan: ZipPlan) -> None:
    names = _dicom_names([e.name for e in plan.entries])
    assert names[0] == "DICOM/ST000001/SE000001/IM000001"
    for name in names:
        components = name.split("/")
        assert is_legal_file_id(components), name
        assert len(components) <= 8
        assert "." not in name


def test_canonical_order_follows_dicom_numbering(plan: ZipPlan, corpus: Corpus) -> None:
    # Studies by date: the 2023 MR study comes first regardless of input order.
    first = next(e for e in plan.entries if e.name == "DICOM/ST000001/SE000001/IM000001")
    mr = corpus.patients[0].studies[1].series[0].instances[0]
    assert first.object_id == mr.object_id


# --- DICOMDIR ------------------------------------------------------------------------------


def test_dicomdir_opens_with_fileset_and_references_exactly_the_dicom_files(
    extracted: Path, archive: bytes
) -> None:
    ds = pydicom.dcmread(extracted / "DICOMDIR")
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID.startswith("2.25.")
    assert ds.FileSetID
    fs = FileSet(ds)
    strict = FileSet()
    strict.load(extracted / "DICOMDIR", raise_orphans=True)
    assert len(strict) == len(fs) == 12

    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        dicom_files = set(_dicom_names(zf.namelist()))
    referenced = {"/".join(instance.ReferencedFileID) for instance in fs}
    assert referenced == dicom_files

    for instance in fs:
        on_disk = pydicom.dcmread(instance.path)
        assert instance.ReferencedSOPInstanceUIDInFile == on_disk.SOPInstanceUID
        assert instance.ReferencedSOPClassUIDInFile == on_disk.SOPClassUID
        assert instance.ReferencedTransferSyntaxUIDInFile == on_disk.file_meta.TransferSyntaxUID
        assert instance.InstanceNumber == on_disk.InstanceNumber
        assert instance.SeriesInstanceUID == on_disk.SeriesInstanceUID
        assert instance.Modality == on_disk.Modality
        assert instance.SeriesNumber == on_disk.SeriesNumber
        assert instance.StudyInstanceUID == on_disk.StudyInstanceUID
        assert instance.StudyDate == on_disk.StudyDate
        assert instance.StudyTime == on_disk.StudyTime
        assert instance.StudyDescription == on_disk.StudyDescription
        assert instance.AccessionNumber == on_disk.AccessionNumber
        assert instance.StudyID == on_disk.StudyID
        assert instance.PatientID == on_disk.PatientID
        assert str(instance.PatientName) == "Müller^Jürgen"


def test_dicomdir_record_offsets(extracted: Path) -> None:
    """Walk the record tree purely through the offsets: every record exactly once."""
    ds = pydicom.dcmread(extracted / "DICOMDIR")
    records = {r.seq_item_tell: r for r in ds.DirectoryRecordSequence}
    levels = ["PATIENT", "STUDY", "SERIES", "IMAGE"]
    visited: list[int] = []

    def walk(offset: int, depth: int) -> int:
        last = 0
        while offset:
            record = records[offset]
            assert record.DirectoryRecordType == levels[depth]
            assert record.RecordInUseFlag == 0xFFFF
            visited.append(offset)
            lower = record.OffsetOfReferencedLowerLevelDirectoryEntity
            if depth < 3:
                assert lower
                walk(lower, depth + 1)
            else:
                assert lower == 0
            last = offset
            offset = record.OffsetOfTheNextDirectoryRecord
        return last

    first = ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity
    assert walk(first, 0) == ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity
    assert sorted(visited) == sorted(records)
    patient = records[first]
    assert patient.SpecificCharacterSet == "ISO_IR 100"
    assert patient.PatientBirthDate == "19600214"
    assert patient.PatientSex == "M"


def test_dicomdir_passes_dciodvfy(extracted: Path) -> None:
    _run_dciodvfy(extracted / "DICOMDIR")


def test_dicomdir_unicode_missing_values_multi_patient(tmp_path: Path) -> None:
    """Non-Latin names need UTF-8; unknown Type 1 keys get deterministic placeholders."""

    def instance(uid: str) -> PdiInstance:
        return PdiInstance(f"o{uid}", CTImageStorage, uid, ExplicitVRLittleEndian, None, 10, 0)

    patients = [
        PdiPatient(
            "",
            "Παπαδόπουλος^Νίκος",
            "bogus",
            "X",
            (
                PdiStudy(
                    "1.2.3.1",
                    "",
                    "",
                    "",
                    "",
                    "",
                    (PdiSeries("1.2.3.1.1", "ct", None, (instance("1.2.3.1.1.1"),)),),
                ),
            ),
        ),
        PdiPatient(
            "P2",
            "Doe^Jane",
            "19991231",
            "F",
            (
                PdiStudy(
                    "1.2.3.2",
                    "20240101",
                    "12:30:00",
                    "x" * 100,
                    "A\\B",
                    "12345678901234567890",
                    (
                        PdiSeries(
                            "1.2.3.2.1", "MR", 3, (instance("1.2.3.2.1.1"), instance("1.2.3.2.1.2"))
                        ),
                    ),
                ),
            ),
        ),
    ]
    file_ids = {
        "1.2.3.1.1.1": ("DICOM", "A", "B", "C"),
        "1.2.3.2.1.1": ("DICOM", "A", "B", "D"),
        "1.2.3.2.1.2": ("DICOM", "A", "B", "E"),
    }
    data = build_dicomdir(patients, file_ids)
    assert data == build_dicomdir(list(reversed(patients)), file_ids)
    path = tmp_path / "DICOMDIR"
    path.write_bytes(data)
    for file_id in file_ids.values():
        target = tmp_path.joinpath(*file_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")
    _run_dciodvfy(path)

    ds = pydicom.dcmread(path)
    by_type: dict[str, list[Dataset]] = {}
    for record in ds.DirectoryRecordSequence:
        by_type.setdefault(record.DirectoryRecordType, []).append(record)
    greek = next(r for r in by_type["PATIENT"] if r.SpecificCharacterSet == "ISO_IR 192")
    assert str(greek.PatientName) == "Παπαδόπουλος^Νίκος"
    assert greek.PatientID == "1.2.3.1"  # falls back to the Study Instance UID
    assert "PatientBirthDate" not in greek
    assert "PatientSex" not in greek
    unknown, known = sorted(by_type["STUDY"], key=lambda r: r.StudyInstanceUID)
    assert (unknown.StudyDate, unknown.StudyTime, unknown.StudyID) == ("19000101", "000000", "1")
    assert (known.StudyTime, known.AccessionNumber, known.StudyID) == (
        "123000",
        "AB",
        "1234567890123456",
    )
    assert len(known.StudyDescription) == 64
    assert [r.Modality for r in by_type["SERIES"]] == ["CT", "MR"]
    assert [r.InstanceNumber for r in by_type["IMAGE"]] == [1, 1, 2]
    assert "SpecificCharacterSet" not in by_type["SERIES"][0]


# --- determinism ---------------------------------------------------------------------------


async def test_same_input_gives_identical_bytes(
    corpus: Corpus, archive: bytes, plan: ZipPlan
) -> None:
    again = plan_zip(pdi_layout(corpus.patients, corpus.documents, readme_text=README))
    assert again.etag == plan.etag
    assert again.total_size == plan.total_size
    assert await _collect(again, corpus.open_object(chunk=777)) == archive

    # Input order from the index must not matter: shuffle every level.
    rng = random.Random(7)

    def shuffled(items: tuple[T, ...]) -> tuple[T, ...]:
        out = list(items)
        rng.shuffle(out)
        return tuple(out)

    patients = [
        replace(
            p,
            studies=shuffled(
                tuple(
                    replace(
                        st,
                        series=shuffled(
                            tuple(replace(se, instances=shuffled(se.instances)) for se in st.series)
                        ),
                    )
                    for st in p.studies
                )
            ),
        )
        for p in corpus.patients
    ]
    permuted = plan_zip(pdi_layout(patients, corpus.documents, readme_text=README))
    assert permuted.etag == plan.etag
    assert await _collect(permuted, corpus.open_object()) == archive


def test_etag_changes_with_content(corpus: Corpus, plan: ZipPlan) -> None:
    assert plan.etag.startswith('"')
    assert plan.etag.endswith('"')
    other = plan_zip(pdi_layout(corpus.patients, corpus.documents, readme_text=README + "x"))
    assert other.etag != plan.etag
    moved = [replace(d, object_id="obj-report-2") for d in corpus.documents]
    assert plan_zip(pdi_layout(corpus.patients, moved, readme_text=README)).etag != plan.etag


# --- ranges --------------------------------------------------------------------------------


async def test_random_ranges_equal_slices(corpus: Corpus, plan: ZipPlan, archive: bytes) -> None:
    rng = random.Random(1955)
    total = plan.total_size
    cuts = [0, 1, 30, total - 22, total - 1, total]
    for entry_start in (0, 100, total // 2):
        cuts.append(entry_start)
    ranges = [(a, b) for a in cuts for b in cuts if a <= b]
    for _ in range(300):
        a = rng.randrange(total + 1)
        ranges.append((a, rng.randint(a, min(total, a + rng.choice([1, 50, 5000, total])))))
    for start, end in ranges:
        assert (
            await _collect(plan, corpus.open_object(chunk=1000), start, end) == archive[start:end]
        ), (start, end)
    # end defaults to the end of the archive
    assert await _collect(plan, corpus.open_object(), total - 100) == archive[-100:]


async def test_resume_after_40_percent(corpus: Corpus, plan: ZipPlan, archive: bytes) -> None:
    cut = plan.total_size * 40 // 100
    head = await _collect(plan, corpus.open_object(), 0, cut)
    tail = await _collect(plan, corpus.open_object(), cut)
    assert head + tail == archive


async def test_range_reads_only_overlapping_objects(
    corpus: Corpus, plan: ZipPlan, archive: bytes
) -> None:
    # The central directory (end of archive) needs no object at all.
    corpus.calls.clear()
    await _collect(plan, corpus.open_object(), plan.central_directory_offset, plan.total_size)
    assert corpus.calls == []

    # A range inside one member reads exactly that sub-range of that object.
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        info = zf.getinfo("DICOM/ST000002/SE000001/IM000003")
    entry = next(e for e in plan.entries if e.name == info.filename)
    data_start = info.header_offset + 30 + len(info.filename)
    corpus.calls.clear()
    got = await _collect(plan, corpus.open_object(), data_start + 100, data_start + 600)
    assert corpus.calls == [(entry.object_id, 100, 500)]
    assert entry.object_id is not None
    assert got == corpus.blobs[entry.object_id][100:600]

    # A range spanning the end of one member and the start of the next.
    corpus.calls.clear()
    await _collect(
        plan, corpus.open_object(), data_start + entry.size - 10, data_start + entry.size + 100
    )
    assert corpus.calls[0] == (entry.object_id, entry.size - 10, 10)
    assert len(corpus.calls) == 2
    assert corpus.calls[1][1] == 0


def test_stream_rejects_out_of_bounds(corpus: Corpus, plan: ZipPlan) -> None:
    for start, end in [(-1, 10), (10, 5), (0, plan.total_size + 1)]:
        with pytest.raises(ValueError, match="outside archive"):
            _run_sync(_collect(plan, corpus.open_object(), start, end))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-99", (0, 100)),
        ("bytes=0-0", (0, 1)),
        ("bytes=500-", (500, 1000)),
        ("bytes=-100", (900, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=990-2000", (990, 1000)),
        ("BYTES = 10-19", (10, 20)),
        ("bytes=10-19,", (10, 20)),
        ("bytes=0-1,5-6", None),  # multiple ranges: serve the full body
        ("bytes=0-1, 999-", None),
        ("items=0-1", None),
        ("bytes=5-1", None),
        ("bytes=abc", None),
        ("bytes=-", None),
        ("bytes=1-2-3", None),
        ("bytes=+1-2", None),
        ("bytes 0-1", None),
    ],
)
def test_parse_range_header(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range_header(header, 1000) == expected


@pytest.mark.parametrize(
    ("header", "total"),
    [
        ("bytes=1000-", 1000),
        ("bytes=1000-1001", 1000),
        ("bytes=-0", 1000),
        ("bytes=0-", 0),
        ("bytes=-5", 0),
    ],
)
def test_parse_range_header_unsatisfiable(header: str, total: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as excinfo:
        parse_range_header(header, total)
    assert excinfo.value.total == total


def test_content_range() -> None:
    assert content_range(0, 100, 1000) == "bytes 0-99/1000"


# --- ZIP64 ---------------------------------------------------------------------------------


async def test_forced_zip64(corpus: Corpus, archive: bytes) -> None:
    entries = pdi_layout(corpus.patients, corpus.documents, readme_text=README)
    plan64 = plan_zip(entries, force_zip64=True)
    assert plan64.zip64
    data = await _collect(plan64, corpus.open_object())
    assert len(data) == plan64.total_size
    assert data != archive
    # ZIP64 end of central directory record + locator, then a classic EOCD full of markers.
    assert data[-22 - 20 - 56 : -22 - 20 - 52] == b"PK\x06\x06"
    assert data[-22 - 20 : -22 - 16] == b"PK\x06\x07"
    assert struct.unpack("<HHII", data[-14:-2]) == (0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    with zipfile.ZipFile(io.BytesIO(data)) as zf64, zipfile.ZipFile(io.BytesIO(archive)) as zf:
        assert zf64.testzip() is None
        assert zf64.namelist() == zf.namelist()
        for name in zf.namelist():
            assert zf64.read(name) == zf.read(name)
    for start, end in [(0, 100), (1000, 50_000), (plan64.total_size - 300, plan64.total_size)]:
        assert await _collect(plan64, corpus.open_object(), start, end) == data[start:end]


async def test_more_than_65535_entries() -> None:
    count = 70_000
    crcs = [zlib.crc32(bytes([b])) for b in range(256)]
    entries = [
        ZipEntrySpec(f"D{i // 1000:03d}/F{i:05d}", 1, crcs[i % 256], None, bytes([i % 256]))
        for i in range(count)
    ]
    plan = plan_zip(entries)
    assert plan.zip64
    data = await _collect(plan, lambda *_: pytest.fail("no objects to open"))
    assert len(data) == plan.total_size
    # Classic EOCD carries the 0xFFFF marker; the real count is in the ZIP64 record.
    assert struct.unpack("<H", data[-12:-10])[0] == 0xFFFF
    assert data[-22 - 20 : -22 - 16] == b"PK\x06\x07"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        assert len(infos) == count
        assert infos[-1].filename == f"D069/F{count - 1:05d}"
        assert zf.testzip() is None
        for i in range(0, count, 4999):
            assert zf.read(f"D{i // 1000:03d}/F{i:05d}") == bytes([i % 256])


class _LazyArchive(io.RawIOBase):
    """A seekable file whose reads are served by stream_zip ranges (the archive never exists)."""

    def __init__(
        self, plan: ZipPlan, open_object: Callable[[str, int, int], AsyncIterator[bytes]]
    ) -> None:
        self._plan = plan
        self._open_object = open_object
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._plan.total_size}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        end = min(self._pos + len(buffer), self._plan.total_size)
        data = _run_sync(_collect(self._plan, self._open_object, self._pos, end))
        buffer[: len(data)] = data
        self._pos = end
        return len(data)


def test_real_zip64_for_large_member() -> None:
    """A 5 GiB member needs ZIP64 sizes and pushes the next header past 4 GiB."""
    big = 5 * 2**30
    calls: list[tuple[str, int, int]] = []

    async def zeros(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
        calls.append((object_id, offset, length))
        for pos in range(0, length, 1 << 20):
            yield bytes(min(1 << 20, length - pos))

    entries = [
        ZipEntrySpec("BIG.BIN", big, 0x12345678, "big", None),
        ZipEntrySpec("SMALL.TXT", 5, zlib.crc32(b"hello"), None, b"hello"),
    ]
    plan = plan_zip(entries)
    assert plan.zip64  # central directory starts beyond 4 GiB
    assert plan.total_size > big
    with zipfile.ZipFile(_LazyArchive(plan, zeros)) as zf:
        big_info, small_info = zf.infolist()
        assert big_info.file_size == big_info.compress_size == big
        assert small_info.header_offset > 0xFFFFFFFF
        assert zf.read("SMALL.TXT") == b"hello"
    assert calls == []  # nothing of the big member had to be read
    start = 30 + len("BIG.BIN") + 20 + 4 * 2**30
    assert _run_sync(_collect(plan, zeros, start, start + 10)) == bytes(10)
    assert calls == [("big", 4 * 2**30, 10)]


# --- validation and errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/abs",
        "../escape",
        "a/../b",
        "a//b",
        "a/./b",
        "a\\b",
        "dir/",
        "C:/x",
        "nul\x00",
        "tab\tname",
    ],
)
def test_illegal_zip_names_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="illegal archive member name"):
        plan_zip([ZipEntrySpec(name, 1, zlib.crc32(b"x"), None, b"x")])


def test_zip_spec_validation() -> None:
    x = zlib.crc32(b"x")
    with pytest.raises(ValueError, match="duplicate"):
        plan_zip([ZipEntrySpec("A", 1, x, None, b"x"), ZipEntrySpec("a", 1, x, None, b"x")])
    with pytest.raises(ValueError, match="clashes with a directory"):
        plan_zip([ZipEntrySpec("A", 1, x, None, b"x"), ZipEntrySpec("a/B", 1, x, None, b"x")])
    with pytest.raises(ValueError, match="clashes with a directory"):
        plan_zip([ZipEntrySpec("A/B/C", 1, x, None, b"x"), ZipEntrySpec("A/B", 1, x, None, b"x")])
    with pytest.raises(ValueError, match="exactly one"):
        plan_zip([ZipEntrySpec("A", 1, x, "obj", b"x")])
    with pytest.raises(ValueError, match="exactly one"):
        plan_zip([ZipEntrySpec("A", 1, x, None, None)])
    with pytest.raises(ValueError, match="does not match"):
        plan_zip([ZipEntrySpec("A", 1, x + 1, None, b"x")])
    with pytest.raises(ValueError, match="out of range"):
        plan_zip([ZipEntrySpec("A", -1, 0, "obj", None)])
    with pytest.raises(ValueError, match="out of range"):
        plan_zip([ZipEntrySpec("A", 1, 2**32, "obj", None)])
    with pytest.raises(ValueError, match="CRC-32 0"):
        plan_zip([ZipEntrySpec("A", 0, 5, "obj", None)])


def test_non_ascii_member_name_sets_utf8_flag() -> None:
    plan = plan_zip([ZipEntrySpec("Befund Schädel.pdf", 3, zlib.crc32(b"pdf"), None, b"pdf")])
    data = _run_sync(_collect(plan, lambda *_: pytest.fail("unused")))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        (info,) = zf.infolist()
        assert info.filename == "Befund Schädel.pdf"
        assert info.flag_bits & 0x0800
        assert zf.read(info) == b"pdf"


@pytest.mark.parametrize(
    "file_id",
    [
        ("DICOM", "im000001"),  # lowercase
        ("DICOM", "IM0000001"),  # 9 characters
        ("DICOM", "IM.DCM"),
        ("DICOM", ""),
        ("A", "B", "C", "D", "E", "F", "G", "H", "I"),  # 9 components
        (),
    ],
)
def test_illegal_file_ids_rejected(file_id: tuple[str, ...]) -> None:
    instance = PdiInstance("o", CTImageStorage, "1.2.3.4.5", ExplicitVRLittleEndian, 1, 1, 0)
    patient = PdiPatient(
        "P",
        "A^B",
        "",
        "",
        (
            PdiStudy(
                "1.2.3", "20240101", "", "", "", "1", (PdiSeries("1.2.3.4", "CT", 1, (instance,)),)
            ),
        ),
    )
    assert not is_legal_file_id(file_id)
    with pytest.raises(ValueError, match="illegal DICOM file id"):
        build_dicomdir([patient], {"1.2.3.4.5": file_id})


def test_layout_rejects_bad_input(corpus: Corpus) -> None:
    patient = corpus.patients[0]
    study = patient.studies[0]
    series = study.series[0]
    dup = replace(series, instances=(*series.instances, series.instances[0]))
    bad_study = replace(study, series=(dup, *study.series[1:]))
    with pytest.raises(ValueError, match="duplicate SOPInstanceUID"):
        pdi_layout([replace(patient, studies=(bad_study,))], [], readme_text="")
    bad_uid = replace(series, instances=(replace(series.instances[0], sop_instance_uid="1.2.abc"),))
    with pytest.raises(ValueError, match="invalid SOPInstanceUID"):
        pdi_layout(
            [replace(patient, studies=(replace(study, series=(bad_uid,)),))], [], readme_text=""
        )
    negative = replace(series, instances=(replace(series.instances[0], size=-1),))
    with pytest.raises(ValueError, match="out of range"):
        pdi_layout(
            [replace(patient, studies=(replace(study, series=(negative,)),))], [], readme_text=""
        )
    with pytest.raises(ValueError, match="no file id"):
        build_dicomdir(corpus.patients, {})
    any_ids = {
        i.sop_instance_uid: ("DICOM", f"IM{n:06d}")
        for n, i in enumerate(
            (i for st in patient.studies for se in st.series for i in se.instances), start=1
        )
    }
    with pytest.raises(ValueError, match="duplicate StudyInstanceUID"):
        build_dicomdir([patient, replace(patient, patient_id="OTHER")], any_ids)
    with pytest.raises(ValueError, match="too many reports"):
        pdi_layout([], [corpus.documents[0]] * 100_000, readme_text="")


async def test_patient_split_across_objects_is_merged(
    corpus: Corpus, archive: bytes, plan: ZipPlan
) -> None:
    # PS3.3 F.5.1: one PATIENT record per Patient ID, however the index groups rows.
    patient = corpus.patients[0]
    split = [replace(patient, studies=(study,)) for study in patient.studies]
    again = plan_zip(pdi_layout(split, corpus.documents, readme_text=README))
    assert again.etag == plan.etag
    assert await _collect(again, corpus.open_object()) == archive
    conflicting = [split[0], replace(split[1], patient_name="Other^Person")]
    with pytest.raises(ValueError, match="duplicate PatientID"):
        pdi_layout(conflicting, [], readme_text="")


def test_many_reports_use_uniform_names(corpus: Corpus) -> None:
    docs = [replace(corpus.documents[0], object_id=f"r{i}") for i in range(120)]
    names = [e.name for e in pdi_layout([], docs, readme_text="")][2:]
    assert names[0] == "IHE_PDI/RPT00001.PDF"
    assert names[-1] == "IHE_PDI/RPT00120.PDF"


async def test_object_stream_errors_abort(corpus: Corpus, plan: ZipPlan) -> None:
    async def short(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
        yield corpus.blobs[object_id][offset : offset + length - 1]

    async def long(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
        yield corpus.blobs[object_id][offset : offset + length] + b"!"

    async def corrupt(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
        data = bytearray(corpus.blobs[object_id][offset : offset + length])
        data[-1] ^= 0xFF
        yield bytes(data)

    for opener, message in [(short, "returned"), (long, "more than"), (corrupt, "CRC-32")]:
        with pytest.raises(ZipStreamError, match=message):
            await _collect(plan, opener)


async def test_abandoned_stream_closes_object_iterator(corpus: Corpus, plan: ZipPlan) -> None:
    closed: list[str] = []

    async def tracked(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
        try:
            for pos in range(offset, offset + length, 100):
                yield corpus.blobs[object_id][pos : min(pos + 100, offset + length)]
        finally:
            closed.append(object_id)

    stream = stream_zip(plan, tracked, plan.total_size // 3)
    assert isinstance(stream, AsyncGenerator)
    await anext(stream)
    await anext(stream)
    assert closed == []
    await stream.aclose()  # what the ASGI server does when the client goes away
    assert len(closed) == 1
    assert closed[0] in corpus.blobs


@pytest.mark.parametrize(
    "header",
    ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "1" * 5000, "bytes=-" + "7" * 4400],
)
def test_parse_range_header_ignores_absurdly_long_numbers(header: str) -> None:
    # Python refuses to convert decimal strings past 4,300 digits; the header is ignored
    # (the whole body is sent) instead of failing.
    assert parse_range_header(header, 1000) is None
