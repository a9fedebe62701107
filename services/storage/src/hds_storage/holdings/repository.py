"""SQL of holdings and account usage (quota)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hds_storage.downloads.repository import IndexRepository
from hds_storage.models import AccountUsage, Holding, Package, UploadBatch
from hds_storage.sql import NO_SYNC, SessionRepository, rowcount

__all__ = ["HoldingsRepository"]


class HoldingsRepository(SessionRepository):
    """Which account holds which item, and the bytes it uses and reserves."""

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

    async def package_is_held(self, package_id: str) -> bool:
        found = await self.session.scalar(
            select(Holding.id).where(Holding.package_id == package_id).limit(1)
        )
        return found is not None

    async def delete_holding(self, holding_id: str) -> None:
        await self.session.execute(
            delete(Holding).where(Holding.id == holding_id).execution_options(**NO_SYNC)
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
            study_id: total
            for study_id, (_, total) in (
                await IndexRepository(self.session).study_totals(study_ids)
            ).items()
        }
        for document in await IndexRepository(self.session).documents(document_ids):
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
            .execution_options(**NO_SYNC)
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
            .execution_options(**NO_SYNC)
        )

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
            .execution_options(**NO_SYNC)
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
            .execution_options(**NO_SYNC)
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
            .execution_options(**NO_SYNC)
        )
        return rowcount(result) == 1
