"""Plain value objects describing what the metadata index knows about a download.

Nothing in here reads a blob: a DICOMDIR and a ZIP plan are built purely from
these records, so a download can be planned (and its size, ETag and byte ranges
known) before a single stored object is decrypted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "PdiDocument",
    "PdiInstance",
    "PdiPatient",
    "PdiSeries",
    "PdiStudy",
    "ZipEntrySpec",
    "canonical_patients",
]


@dataclass(frozen=True, slots=True)
class PdiInstance:
    """One stored DICOM Part 10 object (plaintext size and CRC-32 of the whole file)."""

    object_id: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    instance_number: int | None
    size: int
    crc32: int


@dataclass(frozen=True, slots=True)
class PdiSeries:
    series_instance_uid: str
    modality: str
    series_number: int | None
    instances: tuple[PdiInstance, ...]


@dataclass(frozen=True, slots=True)
class PdiStudy:
    study_instance_uid: str
    study_date: str  # "YYYYMMDD" or "" when unknown
    study_time: str
    study_description: str
    accession_number: str
    study_id: str
    series: tuple[PdiSeries, ...]


@dataclass(frozen=True, slots=True)
class PdiPatient:
    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    studies: tuple[PdiStudy, ...]


@dataclass(frozen=True, slots=True)
class PdiDocument:
    """A non-DICOM report (PDF) stored as its own object."""

    object_id: str
    title: str
    size: int
    crc32: int


@dataclass(frozen=True, slots=True)
class ZipEntrySpec:
    """One member of the archive.

    Exactly one of ``data`` (small generated files such as DICOMDIR and
    README.TXT, carried inline) and ``object_id`` (a stored object whose
    plaintext the caller streams later) is set; ``size`` and ``crc32`` always
    describe the plaintext so the archive can be planned without reading it.
    """

    name: str
    size: int
    crc32: int
    object_id: str | None
    data: bytes | None


def _number_key(number: int | None) -> tuple[int, int]:
    # Unknown numbers sort after known ones instead of raising on None < int.
    return (1, 0) if number is None else (0, number)


def _merge_patients(patients: Sequence[PdiPatient]) -> list[PdiPatient]:
    # PS3.3 F.5.1: a Patient ID may appear in only one PATIENT record. The
    # index may hand over one patient split across several objects (e.g. one
    # per study), so identical demographics are merged. Conflicting
    # demographics under one ID are left apart for build_dicomdir to reject,
    # and an empty ID never merges (two unknown patients are not one person).
    merged: dict[tuple[str, str, str, str], PdiPatient] = {}
    result: list[PdiPatient] = []
    for patient in patients:
        if not patient.patient_id:
            result.append(patient)
            continue
        key = (patient.patient_id, patient.patient_name, patient.birth_date, patient.sex)
        previous = merged.get(key)
        if previous is None:
            merged[key] = patient
        else:
            merged[key] = PdiPatient(
                patient_id=previous.patient_id,
                patient_name=previous.patient_name,
                birth_date=previous.birth_date,
                sex=previous.sex,
                studies=previous.studies + patient.studies,
            )
    return result + list(merged.values())


def canonical_patients(patients: Sequence[PdiPatient]) -> tuple[PdiPatient, ...]:
    """Return ``patients`` in the canonical order used for file ids and DICOMDIR records.

    The metadata index may hand over rows in any order (e.g. a query without
    ORDER BY). Sorting by the DICOM keys a reader expects (date, number) with
    the unique UIDs as tie-breakers makes the layout, and therefore the ZIP
    bytes and the ETag, independent of that order; a resumed download across
    two requests then sees the identical archive. Empty containers are
    dropped because they would only produce dangling directory records;
    patient objects with the same ID and demographics are merged.
    """
    result: list[PdiPatient] = []
    for patient in sorted(
        _merge_patients(patients),
        key=lambda p: (
            p.patient_id,
            p.patient_name,
            min((s.study_instance_uid for s in p.studies), default=""),
        ),
    ):
        studies: list[PdiStudy] = []
        for study in sorted(
            patient.studies,
            key=lambda s: (s.study_date, s.study_time, s.study_instance_uid),
        ):
            series_list: list[PdiSeries] = []
            for series in sorted(
                study.series,
                key=lambda s: (_number_key(s.series_number), s.series_instance_uid),
            ):
                instances = tuple(
                    sorted(
                        series.instances,
                        key=lambda i: (_number_key(i.instance_number), i.sop_instance_uid),
                    )
                )
                if instances:
                    series_list.append(
                        PdiSeries(
                            series_instance_uid=series.series_instance_uid,
                            modality=series.modality,
                            series_number=series.series_number,
                            instances=instances,
                        )
                    )
            if series_list:
                studies.append(
                    PdiStudy(
                        study_instance_uid=study.study_instance_uid,
                        study_date=study.study_date,
                        study_time=study.study_time,
                        study_description=study.study_description,
                        accession_number=study.accession_number,
                        study_id=study.study_id,
                        series=tuple(series_list),
                    )
                )
        if studies:
            result.append(
                PdiPatient(
                    patient_id=patient.patient_id,
                    patient_name=patient.patient_name,
                    birth_date=patient.birth_date,
                    sex=patient.sex,
                    studies=tuple(studies),
                )
            )
    return tuple(result)
