"""The stand-in storage's packages: real DICOM files of real studies, and PDF reports
(support_storage.py serves them)."""

from __future__ import annotations

import secrets
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from hds_common.pdi import PdiInstance, PdiPatient, PdiSeries, PdiStudy
from hds_common.testing.dicom import make_dicom, make_pdf

__all__ = ["StandinDocument", "StandinPackage", "StandinStudy", "dicom_file", "new_package"]


def dicom_file(
    *,
    patient: PdiPatient,
    study: PdiStudy,
    series_uid: str,
    modality: str,
    sop_uid: str,
    instance_number: int,
    pixels: int,
) -> bytes:
    """A real DICOM Part 10 file (secondary capture, about ``pixels`` bytes of pixel data)."""
    columns = 256
    return make_dicom(
        patient_name=patient.patient_name,
        patient_id=patient.patient_id,
        birth_date=patient.birth_date,
        sex=patient.sex,
        study_uid=study.study_instance_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        sop_class=SecondaryCaptureImageStorage,
        modality=modality,
        study_description=study.study_description,
        study_date=study.study_date,
        study_time=study.study_time,
        accession_number=study.accession_number,
        study_id=study.study_id,
        instance_number=instance_number,
        rows=max(1, pixels // (columns * 2)),  # 16-bit pixels
        columns=columns,
    ).data


@dataclass
class StandinStudy:
    item_id: str
    patient: PdiPatient  # with exactly this one study
    objects: dict[str, bytes]

    @property
    def study(self) -> PdiStudy:
        return self.patient.studies[0]

    def item(self) -> dict[str, Any]:
        modalities = sorted({series.modality for series in self.study.series})
        return {
            "id": self.item_id,
            "kind": "study",
            "mime_type": "application/zip",
            "description": self.study.study_description,
            "study_instance_uid": self.study.study_instance_uid,
            "date": self.study.study_date,
            "modalities": modalities,
            "patient_name": self.patient.patient_name,
            "patient_birth_date": self.patient.birth_date,
            "patient_sex": self.patient.sex,
            "file_count": sum(len(series.instances) for series in self.study.series),
            "size": sum(len(data) for data in self.objects.values()),
        }


@dataclass
class StandinDocument:
    item_id: str
    title: str
    data: bytes
    patient: PdiPatient
    date: str

    def item(self) -> dict[str, Any]:
        return {
            "id": self.item_id,
            "kind": "document",
            "mime_type": "application/pdf",
            "description": self.title,
            "study_instance_uid": None,
            # ISO here, DICOM DA for studies: the service must read both.
            "date": f"{self.date[:4]}-{self.date[4:6]}-{self.date[6:]}",
            "modalities": None,
            "patient_name": self.patient.patient_name,
            "patient_birth_date": self.patient.birth_date,
            "patient_sex": self.patient.sex,
            "file_count": 1,
            "size": len(self.data),
        }


@dataclass
class StandinPackage:
    id: str
    grant: str
    state: str = "complete"
    retry_after: int = 30
    studies: list[StandinStudy] = field(default_factory=list)
    documents: list[StandinDocument] = field(default_factory=list)

    def add_study(
        self,
        *,
        patient: PdiPatient,
        description: str,
        date: str,
        modality: str,
        instances: int,
        pixels: int = 4096,
    ) -> StandinStudy:
        study_uid = generate_uid()
        series_uid = generate_uid()
        blank = PdiStudy(
            study_instance_uid=study_uid,
            study_date=date,
            study_time="101500",
            study_description=description,
            accession_number="ACC" + study_uid[-6:],
            study_id="1",
            series=(),
        )
        objects: dict[str, bytes] = {}
        pdi_instances = []
        for number in range(1, instances + 1):
            sop_uid = generate_uid()
            data = dicom_file(
                patient=patient,
                study=blank,
                series_uid=series_uid,
                modality=modality,
                sop_uid=sop_uid,
                instance_number=number,
                pixels=pixels,
            )
            object_id = uuid.uuid4().hex
            objects[object_id] = data
            pdi_instances.append(
                PdiInstance(
                    object_id=object_id,
                    sop_class_uid=SecondaryCaptureImageStorage,
                    sop_instance_uid=sop_uid,
                    transfer_syntax_uid=ExplicitVRLittleEndian,
                    instance_number=number,
                    size=len(data),
                    crc32=zlib.crc32(data),
                )
            )
        series = PdiSeries(
            series_instance_uid=series_uid,
            modality=modality,
            series_number=1,
            instances=tuple(pdi_instances),
        )
        study = PdiStudy(
            study_instance_uid=study_uid,
            study_date=date,
            study_time=blank.study_time,
            study_description=description,
            accession_number=blank.accession_number,
            study_id=blank.study_id,
            series=(series,),
        )
        entry = StandinStudy(
            item_id=str(uuid.uuid4()),
            patient=PdiPatient(
                patient_id=patient.patient_id,
                patient_name=patient.patient_name,
                birth_date=patient.birth_date,
                sex=patient.sex,
                studies=(study,),
            ),
            objects=objects,
        )
        self.studies.append(entry)
        return entry

    def add_document(self, *, patient: PdiPatient, title: str, date: str) -> StandinDocument:
        document = StandinDocument(
            item_id=str(uuid.uuid4()),
            title=title,
            data=make_pdf(title),
            patient=patient,
            date=date,
        )
        self.documents.append(document)
        return document


def new_package(*, state: str = "complete") -> StandinPackage:
    return StandinPackage(id=str(uuid.uuid4()), grant=secrets.token_urlsafe(24), state=state)
