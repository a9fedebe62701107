"""SQL of shares."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, func, select

from hds_storage.downloads.repository import IndexRepository
from hds_storage.models import Document, Holding, Instance, Share
from hds_storage.sql import NO_SYNC, SessionRepository

__all__ = ["ShareRepository"]


class ShareRepository(SessionRepository):
    """Shares between accounts (an item, or a whole package)."""

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
        studies = await IndexRepository(self.session).study_totals(
            s.item_id for s in shares if s.item_kind == "study"
        )
        documents = {
            d.id: d.size
            for d in await IndexRepository(self.session).documents(
                s.item_id for s in shares if s.item_kind == "document"
            )
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
            delete(Share).where(Share.id == share_id).execution_options(**NO_SYNC)
        )

    async def delete_shares_to(self, account_id: str, item_id: str) -> None:
        """Shares of ``item_id`` (an item, or a package for whole-package shares) to the
        account."""
        await self.session.execute(
            delete(Share)
            .where(Share.to_account_id == account_id, Share.item_id == item_id)
            .execution_options(**NO_SYNC)
        )
