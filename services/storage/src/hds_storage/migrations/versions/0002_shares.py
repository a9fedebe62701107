"""Shares between accounts; the share a holding came with.

Revision ID: 0002_shares
Revises: 0001_initial
Create Date: 2025-02-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_shares"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(36)
ACCOUNT_ID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "package_id", ID, sa.ForeignKey("packages.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("item_kind", sa.String(16), nullable=False),
        sa.Column("item_id", ID, nullable=False),
        sa.Column("from_account_id", ACCOUNT_ID, nullable=False),
        sa.Column("to_account_id", ACCOUNT_ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("from_account_id", "to_account_id", "item_id"),
    )
    op.create_index("ix_shares_package_id", "shares", ["package_id"])
    op.create_index("ix_shares_to_account_id", "shares", ["to_account_id"])

    # Batch mode: SQLite adds a column with a foreign key by copying the table.
    with op.batch_alter_table("holdings") as batch:
        batch.add_column(sa.Column("share_id", ID, nullable=True))
        batch.create_foreign_key(
            "fk_holdings_share_id_shares", "shares", ["share_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_holdings_share_id", ["share_id"])


def downgrade() -> None:
    with op.batch_alter_table("holdings") as batch:
        batch.drop_index("ix_holdings_share_id")
        batch.drop_constraint("fk_holdings_share_id_shares", type_="foreignkey")
        batch.drop_column("share_id")
    op.drop_table("shares")
