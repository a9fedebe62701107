"""Synthetic DICOM Part 10 files and PDF reports for tests and benchmarks."""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid

__all__ = ["DicomFile", "make_dicom", "make_dicom_header", "make_pdf", "make_study", "write_study"]


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
) -> DicomFile:
    """A 16-bit image (CT unless ``sop_class`` says otherwise) as DICOM Part 10 bytes;
    pixels random unless given. ``character_set`` (Specific Character Set, e.g.
    ``"ISO_IR 100"``) is needed for names beyond ASCII."""
    if pixel_data is None:
        rng = np.random.default_rng(seed)
        pixel_data = rng.integers(0, 4096, size=rows * columns, dtype=np.uint16).tobytes()
    sop_uid = UID(sop_uid) if sop_uid else generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
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
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
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
