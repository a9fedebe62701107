"""IHE PDI file layout of a download (see the package docstring for the tree)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from ._dicomdir import build_dicomdir, validate_file_id
from ._model import PdiDocument, PdiPatient, ZipEntrySpec, canonical_patients

__all__ = ["DICOM_DIR", "REPORT_DIR", "pdi_layout"]

DICOM_DIR = "DICOM"
REPORT_DIR = "IHE_PDI"
_MAX_ORDINAL = 999_999  # two-letter prefix + 6 digits = the 8 character limit
_MAX_UINT32 = 0xFFFFFFFF
_MAX_UINT64 = 0xFFFFFFFFFFFFFFFF


def _component(prefix: str, ordinal: int, what: str) -> str:
    if ordinal > _MAX_ORDINAL:
        raise ValueError(f"too many {what} for an 8 character file id component")
    return f"{prefix}{ordinal:06d}"


def _check_blob(what: str, object_id: str, size: int, crc32: int) -> None:
    if not object_id:
        raise ValueError(f"{what} without object id")
    if not 0 <= size <= _MAX_UINT64:
        raise ValueError(f"{what} {object_id!r}: size {size} out of range")
    if not 0 <= crc32 <= _MAX_UINT32:
        raise ValueError(f"{what} {object_id!r}: crc32 {crc32} out of range")


def _report_names(count: int) -> list[str]:
    # 8.3 names keep the IHE_PDI folder readable on any file system a patient
    # might copy it to; two digits cover every realistic case and match the
    # classic REPORT01.PDF, more reports switch to a five digit scheme so that
    # names within one archive are always uniform.
    if count <= 99:
        return [f"REPORT{n:02d}.PDF" for n in range(1, count + 1)]
    if count <= 99_999:
        return [f"RPT{n:05d}.PDF" for n in range(1, count + 1)]
    raise ValueError("too many reports")


def _readme_bytes(text: str) -> bytes:
    # CRLF because the audience opens README.TXT with Windows Notepad; UTF-8
    # (without BOM, which modern editors detect) so German umlauts survive.
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    if not normalized.endswith("\n"):
        normalized += "\n"
    return normalized.replace("\n", "\r\n").encode("utf-8")


def _inline(name: str, data: bytes) -> ZipEntrySpec:
    return ZipEntrySpec(
        name=name, size=len(data), crc32=zlib.crc32(data), object_id=None, data=data
    )


def pdi_layout(
    patients: Sequence[PdiPatient],
    documents: Sequence[PdiDocument],
    *,
    readme_text: str,
) -> list[ZipEntrySpec]:
    """Return the archive members in archive order.

    DICOMDIR, README.TXT, the DICOM files (``DICOM/STnnnnnn/SEnnnnnn/IMnnnnnn``
    in canonical study/series/instance order, numbered from 1 and unique across
    all patients) and finally the reports (``IHE_PDI/REPORTnn.PDF`` in the
    given order, which the caller controls, e.g. newest first).

    Raises ValueError for data that cannot be represented: more than 999999
    studies, series per study or instances per series, invalid or duplicate
    UIDs, negative sizes, CRCs outside 32 bits.
    """
    canonical = canonical_patients(patients)
    file_ids: dict[str, tuple[str, ...]] = {}
    dicom_entries: list[ZipEntrySpec] = []
    study_ordinal = 0
    for patient in canonical:
        for study in patient.studies:
            study_ordinal += 1
            study_dir = _component("ST", study_ordinal, "studies")
            for series_ordinal, series in enumerate(study.series, start=1):
                series_dir = _component("SE", series_ordinal, "series in one study")
                for instance_ordinal, instance in enumerate(series.instances, start=1):
                    _check_blob("instance", instance.object_id, instance.size, instance.crc32)
                    file_id = validate_file_id(
                        (
                            DICOM_DIR,
                            study_dir,
                            series_dir,
                            _component("IM", instance_ordinal, "instances in one series"),
                        )
                    )
                    if instance.sop_instance_uid in file_ids:
                        raise ValueError(f"duplicate SOPInstanceUID {instance.sop_instance_uid!r}")
                    file_ids[instance.sop_instance_uid] = file_id
                    dicom_entries.append(
                        ZipEntrySpec(
                            name="/".join(file_id),
                            size=instance.size,
                            crc32=instance.crc32,
                            object_id=instance.object_id,
                            data=None,
                        )
                    )

    report_entries: list[ZipEntrySpec] = []
    for document, name in zip(documents, _report_names(len(documents)), strict=True):
        _check_blob("document", document.object_id, document.size, document.crc32)
        report_entries.append(
            ZipEntrySpec(
                name=f"{REPORT_DIR}/{name}",
                size=document.size,
                crc32=document.crc32,
                object_id=document.object_id,
                data=None,
            )
        )

    return [
        _inline("DICOMDIR", build_dicomdir(canonical, file_ids)),
        _inline("README.TXT", _readme_bytes(readme_text)),
        *dicom_entries,
        *report_entries,
    ]
