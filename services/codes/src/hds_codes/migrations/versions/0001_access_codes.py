"""Access codes (lookup hash + code key slot + lockout) and per-client throttles.

Revision ID: 0001_access_codes
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_access_codes"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_codes",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("institution_id", sa.String(64), nullable=False),
        sa.Column("package_id", sa.String(64), nullable=False),
        sa.Column("lookup_hash", sa.String(64), nullable=False),
        sa.Column("kdf_salt", sa.LargeBinary(32), nullable=False),
        sa.Column("kdf_time_cost", sa.Integer(), nullable=False),
        sa.Column("kdf_memory_kib", sa.Integer(), nullable=False),
        sa.Column("kdf_parallelism", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(128), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("lock_count", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_access_codes"),
        sa.UniqueConstraint("lookup_hash", name="uq_access_codes_lookup_hash"),
    )
    op.create_index(
        "ix_access_codes_institution_id_created_at",
        "access_codes",
        ["institution_id", "created_at"],
    )
    op.create_index("ix_access_codes_package_id", "access_codes", ["package_id"])
    op.create_table(
        "client_throttles",
        sa.Column("client_hash", sa.String(64), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_hash", name="pk_client_throttles"),
    )
    op.create_index(
        "ix_client_throttles_window_started_at", "client_throttles", ["window_started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_client_throttles_window_started_at", table_name="client_throttles")
    op.drop_table("client_throttles")
    op.drop_index("ix_access_codes_package_id", table_name="access_codes")
    op.drop_index("ix_access_codes_institution_id_created_at", table_name="access_codes")
    op.drop_table("access_codes")
