"""SQL of the index: the patient, studies, series, instances and documents of packages."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select

from hds_storage.models import Document, Instance, Patient, Series, Study
from hds_storage.sql import SessionRepository

__all__ = ["IndexRepository", "StudyTotals"]

StudyTotals = dict[str, tuple[int, int]]  # study id -> (instance count, plaintext bytes)


class IndexRepository(SessionRepository):
    """Reads of the index rows (ingest writes them, the sweeps delete them)."""

    async def patient_of_package(self, package_id: str) -> Patient | None:
        return await self.session.scalar(select(Patient).where(Patient.package_id == package_id))

    async def patients(self, patient_ids: Iterable[str]) -> dict[str, Patient]:
        ids = list(set(patient_ids))
        if not ids:
            return {}
        result = await self.session.scalars(select(Patient).where(Patient.id.in_(ids)))
        return {patient.id: patient for patient in result}

    async def study(self, study_id: str) -> Study | None:
        return await self.session.get(Study, study_id)

    async def studies(self, study_ids: Iterable[str]) -> list[Study]:
        ids = list(set(study_ids))
        if not ids:
            return []
        result = await self.session.scalars(select(Study).where(Study.id.in_(ids)))
        return list(result)

    async def studies_of_package(self, package_id: str) -> list[Study]:
        result = await self.session.scalars(select(Study).where(Study.package_id == package_id))
        return list(result)

    async def series_of_studies(self, study_ids: Iterable[str]) -> list[Series]:
        ids = list(set(study_ids))
        if not ids:
            return []
        result = await self.session.scalars(select(Series).where(Series.study_id.in_(ids)))
        return list(result)

    async def instances_of_studies(self, study_ids: Iterable[str]) -> list[Instance]:
        ids = list(set(study_ids))
        if not ids:
            return []
        result = await self.session.scalars(select(Instance).where(Instance.study_id.in_(ids)))
        return list(result)

    async def study_totals(self, study_ids: Iterable[str]) -> StudyTotals:
        ids = list(set(study_ids))
        if not ids:
            return {}
        result = await self.session.execute(
            select(Instance.study_id, func.count(), func.coalesce(func.sum(Instance.size), 0))
            .where(Instance.study_id.in_(ids))
            .group_by(Instance.study_id)
        )
        return {row[0]: (int(row[1]), int(row[2])) for row in result}

    async def instance(self, instance_id: str) -> Instance | None:
        return await self.session.get(Instance, instance_id)

    async def document(self, document_id: str) -> Document | None:
        return await self.session.get(Document, document_id)

    async def documents(self, document_ids: Iterable[str]) -> list[Document]:
        ids = list(set(document_ids))
        if not ids:
            return []
        result = await self.session.scalars(select(Document).where(Document.id.in_(ids)))
        return list(result)

    async def documents_of_package(self, package_id: str) -> list[Document]:
        result = await self.session.scalars(
            select(Document).where(Document.package_id == package_id)
        )
        return list(result)
