"""Shares that wait for room in the recipient's quota; the codes' validity per package.

Revision ID: 0003_waiting_shares_retention
Revises: 0002_shares
Create Date: 2026-12-04 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_waiting_shares_retention"
down_revision: str | None = "0002_shares"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("shares") as batch:
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("sealed_key", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("packages") as batch:
        batch.add_column(sa.Column("codes_valid_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("packages") as batch:
        batch.drop_column("retired_at")
        batch.drop_column("codes_valid_until")
    with op.batch_alter_table("shares") as batch:
        batch.drop_column("sealed_key")
        batch.drop_column("state")
