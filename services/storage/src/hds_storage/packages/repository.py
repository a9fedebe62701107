"""SQL of packages and their key slots."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, delete, exists, select, update

from hds_storage.models import KeySlot, Package, UploadBatch
from hds_storage.sql import NO_SYNC, SessionRepository, rowcount

__all__ = ["PackageRepository"]


class PackageRepository(SessionRepository):
    """Package rows (state, activity, retention hint) and key slots."""

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
            .execution_options(**NO_SYNC)
        )
        if rowcount(result) == 0:
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
            .execution_options(**NO_SYNC)
        )
        return rowcount(result) == 1

    async def touch_open_package(self, package_id: str, now: dt.datetime) -> bool:
        """Record upload activity; False when the package is not (any more) open."""
        result = await self.session.execute(
            update(Package)
            .where(Package.id == package_id, Package.state == "open")
            .values(last_activity_at=now)
            .execution_options(**NO_SYNC)
        )
        return rowcount(result) == 1

    async def complete_package(self, package_id: str, now: dt.datetime) -> bool:
        result = await self.session.execute(
            update(Package)
            .where(Package.id == package_id, Package.state == "open")
            .values(state="complete", completed_at=now)
            .execution_options(**NO_SYNC)
        )
        return rowcount(result) == 1

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
            query.values(state="complete", completed_at=now).execution_options(**NO_SYNC)
        )
        return rowcount(result)

    async def packages_of_institution(self, institution_id: str) -> Sequence[Package]:
        result = await self.session.scalars(
            select(Package)
            .where(Package.institution_id == institution_id, Package.retired_at.is_(None))
            .order_by(Package.created_at.desc(), Package.id)
        )
        return result.all()

    async def delete_package(self, package_id: str) -> None:
        await self.session.execute(
            delete(Package).where(Package.id == package_id).execution_options(**NO_SYNC)
        )

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
            .execution_options(**NO_SYNC)
        )
