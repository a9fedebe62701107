"""All SQL of the storage service.

Locking: a transaction that changes the items or holdings of a package locks the package
row first, then (if it changes usage) the account usage row; nothing locks in the other
order. Locks are taken with a write (a no-op UPDATE): on PostgreSQL that is a row lock,
on SQLite it takes the database write lock before anything is read, which also avoids
the "read snapshot, then upgrade to writer" failure of deferred transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Select, case, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from hds_storage.models import (
    AccountUsage,
    Document,
    Holding,
    Instance,
    KeySlot,
    Package,
    Patient,
    Series,
    Share,
    Study,
    UploadBatch,
)

__all__ = ["StorageRepository", "StudyTotals"]

_NO_SYNC = {"synchronize_session": False}

StudyTotals = dict[str, tuple[int, int]]  # study id -> (instance count, plaintext bytes)


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


class StorageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def flush(self) -> None:
        await self.session.flush()

    def add(self, row: object) -> None:
        self.session.add(row)

    # -- packages and key slots --------------------------------------------------------

    async def package(self, package_id: str) -> Package | None:
        return await self.session.get(Package, package_id)

    async def lock_package(
        self, package_id: str, *, activity: dt.datetime | None = None
    ) -> Package | None:
        """Lock the package row (see module docstring) and return it fresh; ``activity``
        also records upload activity (while the package is open)."""
        values: dict[str, Any] = {"state": Package.state}
        if activity is not None:
            values["last_activity_at"] = case(
                (Package.state == "open", activity), else_=Package.last_activity_at
            )
        result = await self.session.execute(
            update(Package)
            .where(Package.id == package_id)
            .values(**values)
            .execution_options(**_NO_SYNC)
        )
        if _rowcount(result) == 0:
            return None
        return await self.session.get(Package, package_id, populate_existing=True)

    async def set_codes_validity(self, package_id: str, valid_until: dt.datetime) -> bool:
        """Record the codes service's word on until when the package's codes are valid
        (a hint for the retention sweep, which asks again before it retires anything);
        False when the package does not exist or was retired."""
        result = await self.session.execute(
            update(Package)
            .where(Package.id == package_id, Package.retired_at.is_(None))
            .values(codes_valid_until=valid_until)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

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

    async def package_is_held(self, package_id: str) -> bool:
        found = await self.session.scalar(
            select(Holding.id).where(Holding.package_id == package_id).limit(1)
        )
        return found is not None

    async def delete_package(self, package_id: str) -> None:
        await self.session.execute(
            delete(Package).where(Package.id == package_id).execution_options(**_NO_SYNC)
        )

    async def touch_open_package(self, package_id: str, now: dt.datetime) -> bool:
        """Record upload activity; False when the package is not (any more) open."""
        result = await self.session.execute(
            update(Package)
            .where(Package.id == package_id, Package.state == "open")
            .values(last_activity_at=now)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def complete_package(self, package_id: str, now: dt.datetime) -> bool:
        result = await self.session.execute(
            update(Package)
            .where(Package.id == package_id, Package.state == "open")
            .values(state="complete", completed_at=now)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def complete_idle_packages(
        self, *, now: dt.datetime, idle_before: dt.datetime, package_id: str | None = None
    ) -> int:
        """Complete open packages idle since ``idle_before`` that have no upload in
        flight (all, or just ``package_id``); one statement, so several replicas can run
        it at once."""
        in_flight = exists().where(UploadBatch.package_id == Package.id)
        query = update(Package).where(
            Package.state == "open",
            Package.last_activity_at < idle_before,
            ~in_flight,
        )
        if package_id is not None:
            query = query.where(Package.id == package_id)
        result = await self.session.execute(
            query.values(state="complete", completed_at=now).execution_options(**_NO_SYNC)
        )
        return _rowcount(result)

    async def packages_of_institution(self, institution_id: str) -> Sequence[Package]:
        result = await self.session.scalars(
            select(Package)
            .where(Package.institution_id == institution_id, Package.retired_at.is_(None))
            .order_by(Package.created_at.desc(), Package.id)
        )
        return result.all()

    async def slot(self, package_id: str, account_id: str) -> KeySlot | None:
        return await self.session.scalar(
            select(KeySlot).where(
                KeySlot.package_id == package_id, KeySlot.account_id == account_id
            )
        )

    async def slots_of_account(
        self, account_id: str, package_ids: Iterable[str]
    ) -> dict[str, KeySlot]:
        ids = list(set(package_ids))
        if not ids:
            return {}
        result = await self.session.scalars(
            select(KeySlot).where(KeySlot.account_id == account_id, KeySlot.package_id.in_(ids))
        )
        return {slot.package_id: slot for slot in result}

    async def delete_slot(self, package_id: str, account_id: str) -> None:
        await self.session.execute(
            delete(KeySlot)
            .where(KeySlot.package_id == package_id, KeySlot.account_id == account_id)
            .execution_options(**_NO_SYNC)
        )

    # -- index ---------------------------------------------------------------------------

    async def patient_of_package(self, package_id: str) -> Patient | None:
        return await self.session.scalar(select(Patient).where(Patient.package_id == package_id))

    async def patients(self, patient_ids: Iterable[str]) -> dict[str, Patient]:
        ids = list(set(patient_ids))
        if not ids:
            return {}
        result = await self.session.scalars(select(Patient).where(Patient.id.in_(ids)))
        return {patient.id: patient for patient in result}

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

    async def instance(self, instance_id: str) -> Instance | None:
        return await self.session.get(Instance, instance_id)

    async def document(self, document_id: str) -> Document | None:
        return await self.session.get(Document, document_id)

    async def document_by_sha(self, package_id: str, sha256: str) -> Document | None:
        return await self.session.scalar(
            select(Document)
            .where(Document.package_id == package_id, Document.sha256 == sha256)
            .limit(1)
        )

    async def study(self, study_id: str) -> Study | None:
        return await self.session.get(Study, study_id)

    async def studies(self, study_ids: Iterable[str]) -> list[Study]:
        ids = list(set(study_ids))
        if not ids:
            return []
        result = await self.session.scalars(select(Study).where(Study.id.in_(ids)))
        return list(result)

    async def documents(self, document_ids: Iterable[str]) -> list[Document]:
        ids = list(set(document_ids))
        if not ids:
            return []
        result = await self.session.scalars(select(Document).where(Document.id.in_(ids)))
        return list(result)

    async def studies_of_package(self, package_id: str) -> list[Study]:
        result = await self.session.scalars(select(Study).where(Study.package_id == package_id))
        return list(result)

    async def documents_of_package(self, package_id: str) -> list[Document]:
        result = await self.session.scalars(
            select(Document).where(Document.package_id == package_id)
        )
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
            delete(Instance).where(Instance.study_id == study_id).execution_options(**_NO_SYNC)
        )
        await self.session.execute(
            delete(Series).where(Series.id.in_(series_ids)).execution_options(**_NO_SYNC)
        )
        await self.session.execute(
            delete(Study).where(Study.id == study_id).execution_options(**_NO_SYNC)
        )
        return keys

    async def delete_document_row(self, document_id: str) -> list[str]:
        keys = list(
            await self.session.scalars(select(Document.blob_key).where(Document.id == document_id))
        )
        await self.session.execute(
            delete(Document).where(Document.id == document_id).execution_options(**_NO_SYNC)
        )
        return keys

    # -- holdings ------------------------------------------------------------------------

    def _holdings(self, account_id: str) -> Select[Holding]:
        return select(Holding).where(Holding.account_id == account_id)

    async def holdings(self, account_id: str, *, kind: str | None = None) -> list[Holding]:
        query = self._holdings(account_id)
        if kind is not None:
            query = query.where(Holding.item_kind == kind)
        result = await self.session.scalars(query.order_by(Holding.created_at, Holding.id))
        return list(result)

    async def holding(self, account_id: str, item_id: str) -> Holding | None:
        return await self.session.scalar(
            self._holdings(account_id).where(Holding.item_id == item_id)
        )

    async def holdings_in_package(self, account_id: str, package_id: str) -> list[Holding]:
        result = await self.session.scalars(
            self._holdings(account_id).where(Holding.package_id == package_id)
        )
        return list(result)

    async def item_is_held(self, item_id: str) -> bool:
        found = await self.session.scalar(
            select(Holding.id).where(Holding.item_id == item_id).limit(1)
        )
        return found is not None

    async def delete_holding(self, holding_id: str) -> None:
        await self.session.execute(
            delete(Holding).where(Holding.id == holding_id).execution_options(**_NO_SYNC)
        )

    async def evictable_studies(self, account_id: str, *, keep_package: str) -> list[Holding]:
        """Study holdings that automatic deletion may remove, oldest first: never items of
        the package being added to, never studies of a package still being published."""
        result = await self.session.scalars(
            select(Holding)
            .join(Package, Package.id == Holding.package_id)
            .where(
                Holding.account_id == account_id,
                Holding.item_kind == "study",
                Holding.package_id != keep_package,
                Package.state == "complete",
            )
            .order_by(Holding.created_at, Holding.id)
        )
        return list(result)

    async def item_sizes(self, holdings: Sequence[Holding]) -> dict[str, int]:
        """Plaintext bytes of each held item (a whole study or a document)."""
        study_ids = [h.item_id for h in holdings if h.item_kind == "study"]
        document_ids = [h.item_id for h in holdings if h.item_kind == "document"]
        sizes = {
            study_id: total for study_id, (_, total) in (await self.study_totals(study_ids)).items()
        }
        for document in await self.documents(document_ids):
            sizes[document.id] = document.size
        return {h.item_id: sizes.get(h.item_id, 0) for h in holdings}

    async def holdings_of_share(self, share_id: str) -> list[Holding]:
        result = await self.session.scalars(select(Holding).where(Holding.share_id == share_id))
        return list(result)

    async def set_holding_share(self, holding_id: str, share_id: str | None) -> None:
        await self.session.execute(
            update(Holding)
            .where(Holding.id == holding_id)
            .values(share_id=share_id)
            .execution_options(**_NO_SYNC)
        )

    async def claim_holdings(self, account_id: str, package_id: str) -> None:
        """The account now holds the package's items by its own right (a code import):
        no sharer's revocation removes them any more."""
        await self.session.execute(
            update(Holding)
            .where(
                Holding.account_id == account_id,
                Holding.package_id == package_id,
                Holding.share_id.is_not(None),
            )
            .values(share_id=None)
            .execution_options(**_NO_SYNC)
        )

    # -- shares --------------------------------------------------------------------------

    async def share(self, share_id: str) -> Share | None:
        return await self.session.get(Share, share_id, populate_existing=True)

    async def share_between(
        self, from_account_id: str, to_account_id: str, item_id: str
    ) -> Share | None:
        return await self.session.scalar(
            select(Share).where(
                Share.from_account_id == from_account_id,
                Share.to_account_id == to_account_id,
                Share.item_id == item_id,
            )
        )

    async def shares_from(self, account_id: str) -> list[Share]:
        result = await self.session.scalars(
            select(Share)
            .where(Share.from_account_id == account_id)
            .order_by(Share.created_at, Share.id)
        )
        return list(result)

    async def shares_to(self, account_id: str) -> list[Share]:
        result = await self.session.scalars(
            select(Share)
            .where(Share.to_account_id == account_id)
            .order_by(Share.created_at, Share.id)
        )
        return list(result)

    async def covering_share(self, holding: Holding, *, besides: str) -> Share | None:
        """Another share that gives the holding's account its item: one of the item
        itself, or of its whole package (whose item id is the package id)."""
        return await self.session.scalar(
            select(Share)
            .where(
                Share.to_account_id == holding.account_id,
                Share.item_id.in_([holding.item_id, holding.package_id]),
                Share.id != besides,
                Share.state == "active",
            )
            .order_by(Share.created_at, Share.id)
            .limit(1)
        )

    async def share_sizes(self, shares: Sequence[Share]) -> dict[str, int]:
        """Plaintext bytes of what each share gives (an item, or a whole package)."""
        package_ids = [s.package_id for s in shares if s.item_kind == "package"]
        package_totals: dict[str, int] = {}
        if package_ids:
            rows = await self.session.execute(
                select(Instance.package_id, func.coalesce(func.sum(Instance.size), 0))
                .where(Instance.package_id.in_(set(package_ids)))
                .group_by(Instance.package_id)
            )
            package_totals = {row[0]: int(row[1]) for row in rows}
            rows = await self.session.execute(
                select(Document.package_id, func.coalesce(func.sum(Document.size), 0))
                .where(Document.package_id.in_(set(package_ids)))
                .group_by(Document.package_id)
            )
            for package_id, total in rows:
                package_totals[package_id] = package_totals.get(package_id, 0) + int(total)
        studies = await self.study_totals(s.item_id for s in shares if s.item_kind == "study")
        documents = {
            d.id: d.size
            for d in await self.documents(s.item_id for s in shares if s.item_kind == "document")
        }
        sizes: dict[str, int] = {}
        for share in shares:
            if share.item_kind == "package":
                sizes[share.id] = package_totals.get(share.package_id, 0)
            elif share.item_kind == "study":
                sizes[share.id] = studies.get(share.item_id, (0, 0))[1]
            else:
                sizes[share.id] = documents.get(share.item_id, 0)
        return sizes

    async def delete_share(self, share_id: str) -> None:
        await self.session.execute(
            delete(Share).where(Share.id == share_id).execution_options(**_NO_SYNC)
        )

    async def delete_shares_to(self, account_id: str, item_id: str) -> None:
        """Shares of ``item_id`` (an item, or a package for whole-package shares) to the
        account."""
        await self.session.execute(
            delete(Share)
            .where(Share.to_account_id == account_id, Share.item_id == item_id)
            .execution_options(**_NO_SYNC)
        )

    # -- usage and upload batches -----------------------------------------------------------

    async def lock_usage(self, account_id: str) -> int:
        """Create the usage row if needed, lock it, and return the used bytes."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self.session.execute(
            insert(AccountUsage)
            .values(account_id=account_id, used_bytes=0)
            .on_conflict_do_nothing(index_elements=["account_id"])
        )
        used = await self.session.scalar(
            update(AccountUsage)
            .where(AccountUsage.account_id == account_id)
            .values(used_bytes=AccountUsage.used_bytes)
            .returning(AccountUsage.used_bytes)
            .execution_options(**_NO_SYNC)
        )
        return int(used or 0)

    async def used_bytes(self, account_id: str) -> int:
        used = await self.session.scalar(
            select(AccountUsage.used_bytes).where(AccountUsage.account_id == account_id)
        )
        return int(used or 0)

    async def add_usage(self, account_id: str, delta: int) -> None:
        if delta == 0:
            return
        await self.session.execute(
            update(AccountUsage)
            .where(AccountUsage.account_id == account_id)
            .values(used_bytes=AccountUsage.used_bytes + delta)
            .execution_options(**_NO_SYNC)
        )

    async def reserved_bytes(self, account_id: str) -> int:
        reserved = await self.session.scalar(
            select(func.coalesce(func.sum(UploadBatch.reserved_bytes), 0)).where(
                UploadBatch.account_id == account_id
            )
        )
        return int(reserved or 0)

    async def add_reservation(self, batch_id: str, amount: int, now: dt.datetime) -> bool:
        result = await self.session.execute(
            update(UploadBatch)
            .where(UploadBatch.id == batch_id)
            .values(reserved_bytes=UploadBatch.reserved_bytes + amount, heartbeat_at=now)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def heartbeat(self, batch_id: str, now: dt.datetime) -> bool:
        result = await self.session.execute(
            update(UploadBatch)
            .where(UploadBatch.id == batch_id)
            .values(heartbeat_at=now)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def delete_batch(self, batch_id: str) -> bool:
        result = await self.session.execute(
            delete(UploadBatch).where(UploadBatch.id == batch_id).execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def delete_stale_batches(self, *, heartbeat_before: dt.datetime) -> int:
        result = await self.session.execute(
            delete(UploadBatch)
            .where(UploadBatch.heartbeat_at < heartbeat_before)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result)

    async def packages_with_batches(self, package_ids: Iterable[str]) -> set[str]:
        ids = list(set(package_ids))
        if not ids:
            return set()
        result = await self.session.scalars(
            select(UploadBatch.package_id).where(UploadBatch.package_id.in_(ids)).distinct()
        )
        return set(result)
