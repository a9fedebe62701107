"""SQL of the sweeps: dead uploads, retention candidates, unheld items, orphan blobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import delete, func, select

from hds_storage.models import Document, Holding, Instance, Package, Series, Study, UploadBatch
from hds_storage.sql import NO_SYNC, SessionRepository, rowcount

__all__ = ["MaintenanceRepository"]


class MaintenanceRepository(SessionRepository):
    """What the maintenance and retention sweeps look for and delete."""

    async def packages_past_retention(
        self, *, kept_before: dt.datetime, limit: int = 100
    ) -> list[str]:
        """Complete, unretired packages whose codes (or, without any, whose completion)
        ended before ``kept_before``."""
        end = func.coalesce(Package.codes_valid_until, Package.completed_at)
        result = await self.session.scalars(
            select(Package.id)
            .where(
                Package.state == "complete",
                Package.retired_at.is_(None),
                end.is_not(None),
                end < kept_before,
            )
            .order_by(Package.id)
            .limit(limit)
        )
        return list(result)

    async def delete_stale_batches(self, *, heartbeat_before: dt.datetime) -> int:
        result = await self.session.execute(
            delete(UploadBatch)
            .where(UploadBatch.heartbeat_at < heartbeat_before)
            .execution_options(**NO_SYNC)
        )
        return rowcount(result)

    async def unheld_items(self, limit: int = 1000) -> list[tuple[str, str, str]]:
        """(package id, kind, item id) of studies and documents no holding refers to."""
        held = select(Holding.item_id)
        studies = await self.session.execute(
            select(Study.package_id, Study.id).where(Study.id.not_in(held)).limit(limit)
        )
        documents = await self.session.execute(
            select(Document.package_id, Document.id).where(Document.id.not_in(held)).limit(limit)
        )
        return [(p, "study", i) for p, i in studies] + [(p, "document", i) for p, i in documents]

    async def object_ids_present(self, object_ids: Iterable[str]) -> set[str]:
        ids = list(set(object_ids))
        present: set[str] = set()
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            present.update(
                await self.session.scalars(select(Instance.id).where(Instance.id.in_(batch)))
            )
            present.update(
                await self.session.scalars(select(Document.id).where(Document.id.in_(batch)))
            )
        return present

    async def delete_study_rows(self, study_id: str) -> list[str]:
        """Delete a study with its series and instances; returns their blob keys."""
        keys = list(
            await self.session.scalars(
                select(Instance.blob_key).where(Instance.study_id == study_id)
            )
        )
        series_ids = select(Series.id).where(Series.study_id == study_id)
        await self.session.execute(
            delete(Instance).where(Instance.study_id == study_id).execution_options(**NO_SYNC)
        )
        await self.session.execute(
            delete(Series).where(Series.id.in_(series_ids)).execution_options(**NO_SYNC)
        )
        await self.session.execute(
            delete(Study).where(Study.id == study_id).execution_options(**NO_SYNC)
        )
        return keys

    async def delete_document_row(self, document_id: str) -> list[str]:
        keys = list(
            await self.session.scalars(select(Document.blob_key).where(Document.id == document_id))
        )
        await self.session.execute(
            delete(Document).where(Document.id == document_id).execution_options(**NO_SYNC)
        )
        return keys
