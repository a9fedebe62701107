"""Synthetic DICOM Part 10 files and PDF reports for tests and benchmarks."""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

__all__ = [
    "DicomFile",
    "broken_dicom_files",
    "broken_pdf_files",
    "make_dicom",
    "make_dicom_header",
    "make_pdf",
    "make_study",
    "write_study",
]


@dataclass(frozen=True)
class DicomFile:
    data: bytes
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    pixel_data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def make_dicom(
    *,
    patient_name: str = "Doe^Jane",
    patient_id: str = "PID-1",
    birth_date: str = "19700101",
    sex: str = "F",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    sop_class: str = CTImageStorage,
    modality: str = "CT",
    study_description: str = "CT Thorax",
    study_date: str = "20240419",
    study_time: str = "101500",
    accession_number: str = "ACC-1",
    study_id: str = "1",
    character_set: str | None = None,
    series_number: int = 1,
    instance_number: int = 1,
    rows: int = 32,
    columns: int = 32,
    pixel_data: bytes | None = None,
    seed: int | None = None,
    implicit: bool = False,
) -> DicomFile:
    """A 16-bit image (CT unless ``sop_class`` says otherwise) as DICOM Part 10 bytes;
    pixels random unless given. ``character_set`` (Specific Character Set, e.g.
    ``"ISO_IR 100"``) is needed for names beyond ASCII; ``implicit``: Implicit VR Little
    Endian instead of Explicit."""
    if pixel_data is None:
        rng = np.random.default_rng(seed)
        pixel_data = rng.integers(0, 4096, size=rows * columns, dtype=np.uint16).tobytes()
    sop_uid = UID(sop_uid) if sop_uid else generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    if character_set is not None:
        ds.SpecificCharacterSet = character_set
    ds.SOPClassUID = UID(sop_class)
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date
    ds.PatientSex = sex
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyDate = study_date
    ds.StudyTime = study_time
    ds.StudyDescription = study_description
    ds.AccessionNumber = accession_number
    ds.StudyID = study_id
    ds.Modality = modality
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = pixel_data
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return DicomFile(
        buffer.getvalue(), sop_uid, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), pixel_data
    )


# Explicit VR Little Endian Pixel Data element header: tag, VR "OW", reserved, 32-bit length.
_PIXEL_DATA_HEADER = "<HH2sHI"


def make_dicom_header(rows: int, columns: int, **kwargs: object) -> bytes:
    """The start of a :func:`make_dicom` image whose Pixel Data element announces
    ``rows * columns * 2`` bytes but carries none: a caller streams exactly that many
    after it to upload a large instance without holding it in memory."""
    empty = make_dicom(rows=rows, columns=columns, pixel_data=b"", **kwargs)  # type: ignore[arg-type]
    element = struct.pack(_PIXEL_DATA_HEADER, 0x7FE0, 0x0010, b"OW", 0, 0)
    if not empty.data.endswith(element):
        raise AssertionError("Pixel Data is not the last element of the dataset")
    announced = struct.pack(_PIXEL_DATA_HEADER, 0x7FE0, 0x0010, b"OW", 0, rows * columns * 2)
    return empty.data[: -len(element)] + announced


def make_study(count: int = 3, *, series: int = 2, **kwargs: object) -> list[DicomFile]:
    """``count`` instances of one study spread over ``series`` series."""
    study_uid = str(kwargs.pop("study_uid", None) or generate_uid())
    series_uids = [generate_uid() for _ in range(series)]
    return [
        make_dicom(
            study_uid=study_uid,
            series_uid=series_uids[i % series],
            series_number=i % series + 1,
            instance_number=i // series + 1,
            **kwargs,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]


def write_study(folder: Path, files: list[DicomFile]) -> list[Path]:
    """Write ``files`` with meaningless names (ingest must detect content, not names)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, dicom in enumerate(files):
        path = folder / f"img{index:05d}.bin"
        path.write_bytes(dicom.data)
        paths.append(path)
    return paths


def make_pdf(text_marker: str = "Report text") -> bytes:
    """A small valid PDF whose content stream carries ``text_marker`` uncompressed."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text_marker}) Tj ET".encode()
    return _assemble_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        ]
    )


def _assemble_pdf(objects: list[bytes]) -> bytes:
    """Header, numbered objects, cross-reference table and trailer (object 1 is the root)."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


# -- broken files: what ingest must refuse ----------------------------------------------------

_GROUP_LENGTH_VALUE = 140  # offset of the (0002,0000) value: preamble, DICM, tag, VR, length


def _meta_end(data: bytes) -> int:
    (group_length,) = struct.unpack_from("<L", data, _GROUP_LENGTH_VALUE)
    return int(_GROUP_LENGTH_VALUE + 4 + group_length)


def _with_group_length(data: bytes, value: int) -> bytes:
    return data[:_GROUP_LENGTH_VALUE] + struct.pack("<L", value) + data[_GROUP_LENGTH_VALUE + 4 :]


def _leading_zero(uid: str) -> str:
    """``uid`` with the first digit of its last component turned into a leading zero
    (same length, no longer a valid UID)."""
    head, _, last = uid.rpartition(".")
    assert len(last) > 1
    return f"{head}.0{last[1:]}"


def broken_dicom_files() -> dict[str, bytes]:
    """DICOM files a receiving archive refuses, by the flaw in their name."""
    good = make_dicom(seed=11)
    data = good.data
    meta_end = _meta_end(data)
    (group_length,) = struct.unpack_from("<L", data, _GROUP_LENGTH_VALUE)
    sop = good.sop_instance_uid.encode()
    other_sop = sop[:-1] + (b"1" if sop[-1:] != b"1" else b"2")
    implicit = make_dicom(seed=11, sop_uid=good.sop_instance_uid, implicit=True)
    explicit_ts = b"1.2.840.10008.1.2.1\0"
    return {
        # The group length of the report that started these checks.
        "group-length-huge.dcm": _with_group_length(data, 0x7FFFFFF0),
        "group-length-long.dcm": _with_group_length(data, group_length + 8),
        "group-length-short.dcm": _with_group_length(data, group_length - 6),
        "truncated-in-pixel-data.dcm": data[: len(data) - 100],
        "truncated-in-header.dcm": data[: meta_end + 40],
        "truncated-in-meta.dcm": data[: meta_end - 20],
        "wrong-preamble.dcm": data[:128] + b"DICN" + data[132:],
        "no-preamble.dcm": data[128:],
        "unknown-transfer-syntax.dcm": data.replace(explicit_ts, b"1.2.840.10008.1.2.9\0", 1),
        "implicit-dataset-under-explicit-meta.dcm": data[:meta_end]
        + implicit.data[_meta_end(implicit.data) :],
        "meta-sop-instance-mismatch.dcm": data.replace(sop, other_sop, 1),
        "sop-instance-uid-leading-zero.dcm": data.replace(
            sop, _leading_zero(good.sop_instance_uid).encode()
        ),
        "html-named-dcm.dcm": b"<!DOCTYPE html><html><body>" + b"x" * 200 + b"</body></html>",
    }


def broken_pdf_files() -> dict[str, bytes]:
    """Files named like PDF reports that are none (or have nothing to show)."""
    # 34 bytes with the PDF header and no document behind it.
    header_only = b"%PDF-1.4\nthis is no document at all\n"[:34]
    return {
        "html-renamed.pdf": b"<!DOCTYPE html><html><body><p>Befund</p></body></html>\n",
        "header-without-body.pdf": header_only,
        "truncated.pdf": make_pdf("truncated")[:180],
        "no-pages.pdf": _assemble_pdf(
            [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"]
        ),
        "empty.pdf": b"",
    }
