"""SQL of uploads: upload batches and the lookups that keep ingest idempotent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import delete, select, update

from hds_storage.models import Document, Instance, Series, Study, UploadBatch
from hds_storage.sql import NO_SYNC, SessionRepository, rowcount

__all__ = ["IngestRepository"]


class IngestRepository(SessionRepository):
    """Upload batches (heartbeat, claim) and existing rows by DICOM UID or hash."""

    async def study_by_uid(self, package_id: str, study_uid: str) -> Study | None:
        return await self.session.scalar(
            select(Study).where(
                Study.package_id == package_id, Study.study_instance_uid == study_uid
            )
        )

    async def series_by_uid(self, study_id: str, series_uid: str) -> Series | None:
        return await self.session.scalar(
            select(Series).where(
                Series.study_id == study_id, Series.series_instance_uid == series_uid
            )
        )

    async def instance_by_uid(self, package_id: str, sop_uid: str) -> Instance | None:
        return await self.session.scalar(
            select(Instance).where(
                Instance.package_id == package_id, Instance.sop_instance_uid == sop_uid
            )
        )

    async def document_by_sha(self, package_id: str, sha256: str) -> Document | None:
        return await self.session.scalar(
            select(Document)
            .where(Document.package_id == package_id, Document.sha256 == sha256)
            .limit(1)
        )

    async def heartbeat(self, batch_id: str, now: dt.datetime) -> bool:
        result = await self.session.execute(
            update(UploadBatch)
            .where(UploadBatch.id == batch_id)
            .values(heartbeat_at=now)
            .execution_options(**NO_SYNC)
        )
        return rowcount(result) == 1

    async def delete_batch(self, batch_id: str) -> bool:
        result = await self.session.execute(
            delete(UploadBatch).where(UploadBatch.id == batch_id).execution_options(**NO_SYNC)
        )
        return rowcount(result) == 1

    async def packages_with_batches(self, package_ids: Iterable[str]) -> set[str]:
        ids = list(set(package_ids))
        if not ids:
            return set()
        result = await self.session.scalars(
            select(UploadBatch.package_id).where(UploadBatch.package_id.in_(ids)).distinct()
        )
        return set(result)
