"""Read model: decrypts index rows into API views and IHE PDI models.

Lists are decrypted per request with the keys the caller's grant unlocks
(:class:`~hds_storage.keyring.KeyRing` for accounts, ``GrantKeys`` for a package grant).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hds_common.crypto import IntegrityError
from hds_common.pdi import PdiDocument, PdiInstance, PdiPatient, PdiSeries, PdiStudy
from hds_storage.downloads.repository import IndexRepository
from hds_storage.downloads.schemas import DataItem
from hds_storage.errors import integrity_failure
from hds_storage.holdings.schemas import (
    DocumentPublic,
    InstancePublic,
    SeriesPublic,
    StudyDetail,
    StudyPublic,
)
from hds_storage.keys import MetaCipher
from hds_storage.models import Document, Instance, Patient, Study
from hds_storage.schemas import PatientPublic, as_utc

__all__ = ["ArchiveContent", "IndexReader", "Keys", "iso_date", "modalities_of"]

_KEY_BINDING = b"hds/storage/archive-content/key"


@dataclass(frozen=True, slots=True)
class ArchiveContent:
    """Index rows of an archive download (see :meth:`IndexReader.archive_content`)."""

    # Names exactly these rows under these keys: the key of the plan cache.
    fingerprint: str
    objects: dict[str, Instance | Document]
    # Decrypts the rows into the IHE PDI model (raises IntegrityFailure).
    build: Callable[[], tuple[list[PdiPatient], list[PdiDocument]]]


class Keys(Protocol):
    async def load(self, package_ids: set[str] | list[str]) -> None: ...

    async def key(self, package_id: str) -> bytes: ...

    def cipher(self, package_id: str) -> MetaCipher: ...


def iso_date(value: Any) -> dt.date | None:
    """DICOM ``YYYYMMDD`` → date; anything else (empty, partial, invalid) → None."""
    if not isinstance(value, str) or len(value.strip()) != 8:
        return None
    try:
        return dt.datetime.strptime(value.strip(), "%Y%m%d").date()
    except ValueError:
        return None


def modalities_of(series_meta: Iterable[dict[str, Any]]) -> list[str]:
    found = {str(meta.get("modality") or "") for meta in series_meta}
    return sorted(m for m in found if m)


class IndexReader:
    """Decrypting views over the index, for one request."""

    def __init__(self, repo: IndexRepository, keys: Keys) -> None:
        self.repo = repo
        self.keys = keys

    def open(self, package_id: str, table: str, row_id: str, sealed: bytes) -> dict[str, Any]:
        try:
            return self.keys.cipher(package_id).open(table, row_id, sealed)
        except IntegrityError:
            raise integrity_failure(
                "metadata failed authentication", table=table, row=row_id
            ) from None

    def patient(self, patient: Patient) -> PatientPublic:
        meta = self.open(patient.package_id, "patients", patient.id, patient.meta)
        return PatientPublic(
            id=patient.id,
            package_id=patient.package_id,
            patient_id=str(meta.get("patient_id", "")),
            name=str(meta.get("name", "")),
            birth_date=iso_date(meta.get("birth_date")),
            sex=str(meta.get("sex", "")),
        )

    async def patients(self, patient_ids: Iterable[str]) -> dict[str, PatientPublic]:
        rows = await self.repo.patients(patient_ids)
        await self.keys.load({row.package_id for row in rows.values()})
        return {row_id: self.patient(row) for row_id, row in rows.items()}

    async def studies(
        self, studies: Sequence[Study], added_at: dict[str, dt.datetime]
    ) -> list[StudyPublic]:
        await self.keys.load({study.package_id for study in studies})
        patients = await self.patients(study.patient_id for study in studies)
        totals = await self.repo.study_totals(study.id for study in studies)
        package_of = {study.id: study.package_id for study in studies}
        series_meta: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for series in await self.repo.series_of_studies(package_of):
            series_meta[series.study_id].append(
                self.open(package_of[series.study_id], "series", series.id, series.meta)
            )
        views = []
        for study in studies:
            meta = self.open(study.package_id, "studies", study.id, study.meta)
            count, size = totals.get(study.id, (0, 0))
            views.append(
                StudyPublic(
                    id=study.id,
                    package_id=study.package_id,
                    study_instance_uid=study.study_instance_uid,
                    patient=patients[study.patient_id],
                    date=iso_date(meta.get("date")),
                    description=str(meta.get("description", "")),
                    accession_number=str(meta.get("accession_number", "")),
                    modalities=modalities_of(series_meta[study.id]),
                    series_count=len(series_meta[study.id]),
                    instance_count=count,
                    size=size,
                    added_at=as_utc(added_at.get(study.id, study.created_at)),
                )
            )
        return views

    async def study_detail(self, study: Study, added_at: dt.datetime) -> StudyDetail:
        (summary,) = await self.studies([study], {study.id: added_at})
        series_rows = await self.repo.series_of_studies([study.id])
        instances_by_series: dict[str, list[Instance]] = defaultdict(list)
        for instance in await self.repo.instances_of_studies([study.id]):
            instances_by_series[instance.series_id].append(instance)
        series_views = []
        for series in series_rows:
            meta = self.open(study.package_id, "series", series.id, series.meta)
            instances = [self.instance(i) for i in instances_by_series[series.id]]
            instances.sort(
                key=lambda i: (
                    i.instance_number is None,
                    i.instance_number or 0,
                    i.sop_instance_uid,
                )
            )
            series_views.append(
                SeriesPublic(
                    id=series.id,
                    series_instance_uid=series.series_instance_uid,
                    modality=str(meta.get("modality", "")),
                    number=meta.get("number"),
                    description=str(meta.get("description", "")),
                    instances=instances,
                )
            )
        series_views.sort(key=lambda s: (s.number is None, s.number or 0, s.series_instance_uid))
        return StudyDetail(**summary.model_dump(), series=series_views)

    def instance(self, instance: Instance) -> InstancePublic:
        meta = self.open(instance.package_id, "instances", instance.id, instance.meta)
        number = meta.get("instance_number")
        return InstancePublic(
            id=instance.id,
            sop_class_uid=str(meta.get("sop_class_uid", "")),
            sop_instance_uid=instance.sop_instance_uid,
            transfer_syntax_uid=str(meta.get("transfer_syntax_uid", "")),
            instance_number=number if isinstance(number, int) else None,
            size=instance.size,
            crc32=instance.crc32,
            sha256=instance.sha256,
        )

    async def documents(
        self, documents: Sequence[Document], added_at: dict[str, dt.datetime]
    ) -> list[DocumentPublic]:
        await self.keys.load({d.package_id for d in documents})
        patients = await self.patients(d.patient_id for d in documents)
        views = []
        for document in documents:
            meta = self.open(document.package_id, "documents", document.id, document.meta)
            views.append(
                DocumentPublic(
                    id=document.id,
                    package_id=document.package_id,
                    patient=patients[document.patient_id],
                    title=str(meta.get("title", "")),
                    date=iso_date(meta.get("date")),
                    size=document.size,
                    sha256=document.sha256,
                    added_at=as_utc(added_at.get(document.id, document.created_at)),
                )
            )
        return views

    async def data_items(
        self, studies: Sequence[Study], documents: Sequence[Document]
    ) -> list[DataItem]:
        """The DLX ``dataItems`` of a package (studies as PDI ZIPs, then documents)."""
        items = []
        for study in sorted(
            await self.studies(studies, {}), key=lambda s: (s.date or dt.date.min, s.id)
        ):
            items.append(
                DataItem(
                    id=study.id,
                    kind="study",
                    mime_type="application/zip",
                    description=study.description,
                    study_instance_uid=study.study_instance_uid,
                    date=study.date,
                    modalities="\\".join(study.modalities),
                    patient_name=study.patient.name,
                    patient_birth_date=study.patient.birth_date,
                    patient_sex=study.patient.sex,
                    file_count=study.instance_count,
                    size=study.size,
                )
            )
        for document in await self.documents(documents, {}):
            items.append(
                DataItem(
                    id=document.id,
                    kind="document",
                    mime_type=document.mime_type,
                    description=document.title,
                    study_instance_uid=None,
                    date=document.date,
                    modalities=None,
                    patient_name=document.patient.name,
                    patient_birth_date=document.patient.birth_date,
                    patient_sex=document.patient.sex,
                    file_count=1,
                    size=document.size,
                )
            )
        return items

    async def archive_content(
        self, studies: Sequence[Study], documents: Sequence[Document]
    ) -> ArchiveContent:
        """What an IHE PDI archive of the given items is planned from: the index rows
        (loaded here, in the event loop), their fingerprint and a function that decrypts
        them into the PDI model (CPU only: run it in a worker thread, or not at all when
        a plan for the fingerprint is cached)."""
        package_ids = {s.package_id for s in studies} | {d.package_id for d in documents}
        await self.keys.load(package_ids)
        package_keys = {package_id: await self.keys.key(package_id) for package_id in package_ids}
        patient_rows = await self.repo.patients(s.patient_id for s in studies)
        series_rows = await self.repo.series_of_studies(s.id for s in studies)
        instance_rows = await self.repo.instances_of_studies(s.id for s in studies)
        objects: dict[str, Instance | Document] = {i.id: i for i in instance_rows}
        objects.update((d.id, d) for d in documents)
        # Plain tuples of exactly the columns the model is built from: the fingerprint
        # covers them, and the worker thread never touches ORM objects.
        study_values = sorted(
            (s.id, s.package_id, s.patient_id, s.study_instance_uid, s.meta) for s in studies
        )
        patient_values = sorted((p.id, p.package_id, p.meta) for p in patient_rows.values())
        series_values = sorted(
            (s.id, s.study_id, s.series_instance_uid, s.meta) for s in series_rows
        )
        instance_values = sorted(
            (i.id, i.series_id, i.package_id, i.sop_instance_uid, i.size, i.crc32, i.meta)
            for i in instance_rows
        )
        document_values = sorted(
            (as_utc(d.created_at), d.id, d.package_id, d.size, d.crc32, d.meta) for d in documents
        )
        digest = hashlib.sha256(b"hds/storage/archive-content/v1")
        for package_id, key in sorted(package_keys.items()):
            # Bound to the keys too: a plan built with one key is never served to a
            # request holding another (e.g. a tampered key slot).
            digest.update(package_id.encode() + hashlib.sha256(_KEY_BINDING + key).digest())
        for table, rows in (
            ("studies", study_values),
            ("patients", patient_values),
            ("series", series_values),
            ("instances", instance_values),
            ("documents", document_values),
        ):
            digest.update(f"\x00{table}:{len(rows)}".encode())
            for row in rows:
                *fields, meta = row
                digest.update(f"\x00{fields}:{len(meta)}\x00".encode() + meta)

        def build() -> tuple[list[PdiPatient], list[PdiDocument]]:
            return self._pdi_model(
                study_values, patient_values, series_values, instance_values, document_values
            )

        return ArchiveContent(digest.hexdigest(), objects, build)

    def _pdi_model(
        self,
        studies: list[tuple[str, str, str, str, bytes]],
        patients: list[tuple[str, str, bytes]],
        series: list[tuple[str, str, str, bytes]],
        instances: list[tuple[str, str, str, str, int, int, bytes]],
        documents: list[tuple[dt.datetime, str, str, int, int, bytes]],
    ) -> tuple[list[PdiPatient], list[PdiDocument]]:
        pdi_instances: dict[str, list[PdiInstance]] = defaultdict(list)
        for object_id, series_id, package_id, sop_instance_uid, size, crc32, sealed in instances:
            meta = self.open(package_id, "instances", object_id, sealed)
            number = meta.get("instance_number")
            pdi_instances[series_id].append(
                PdiInstance(
                    object_id=object_id,
                    sop_class_uid=str(meta.get("sop_class_uid", "")),
                    sop_instance_uid=sop_instance_uid,
                    transfer_syntax_uid=str(meta.get("transfer_syntax_uid", "")),
                    instance_number=number if isinstance(number, int) else None,
                    size=size,
                    crc32=crc32,
                )
            )
        series_by_study: dict[str, list[tuple[str, str, bytes]]] = defaultdict(list)
        for series_id, study_id, series_instance_uid, sealed in series:
            series_by_study[study_id].append((series_id, series_instance_uid, sealed))
        studies_by_patient: dict[str, list[PdiStudy]] = defaultdict(list)
        for study_id, package_id, patient_row_id, study_instance_uid, sealed in studies:
            meta = self.open(package_id, "studies", study_id, sealed)
            pdi_series = []
            for series_id, series_instance_uid, series_sealed in series_by_study[study_id]:
                series_meta = self.open(package_id, "series", series_id, series_sealed)
                number = series_meta.get("number")
                pdi_series.append(
                    PdiSeries(
                        series_instance_uid=series_instance_uid,
                        modality=str(series_meta.get("modality", "")) or "OT",
                        series_number=number if isinstance(number, int) else None,
                        instances=tuple(pdi_instances[series_id]),
                    )
                )
            studies_by_patient[patient_row_id].append(
                PdiStudy(
                    study_instance_uid=study_instance_uid,
                    study_date=str(meta.get("date", "")),
                    study_time=str(meta.get("time", "")),
                    study_description=str(meta.get("description", "")),
                    accession_number=str(meta.get("accession_number", "")),
                    study_id=str(meta.get("study_id", "")),
                    series=tuple(pdi_series),
                )
            )
        patient_rows = {row_id: (package_id, sealed) for row_id, package_id, sealed in patients}
        pdi_patients = []
        for patient_row_id, pdi_studies in sorted(studies_by_patient.items()):
            package_id, sealed = patient_rows[patient_row_id]
            meta = self.open(package_id, "patients", patient_row_id, sealed)
            pdi_patients.append(
                PdiPatient(
                    patient_id=str(meta.get("patient_id", "")),
                    patient_name=str(meta.get("name", "")),
                    birth_date=str(meta.get("birth_date", "")),
                    sex=str(meta.get("sex", "")),
                    studies=tuple(pdi_studies),
                )
            )
        pdi_documents = []
        # Sorted by (created_at, id), the order reports are numbered in.
        for _, document_id, package_id, size, crc32, sealed in documents:
            meta = self.open(package_id, "documents", document_id, sealed)
            pdi_documents.append(
                PdiDocument(
                    object_id=document_id,
                    title=str(meta.get("title", "")),
                    size=size,
                    crc32=crc32,
                )
            )
        return pdi_patients, pdi_documents
