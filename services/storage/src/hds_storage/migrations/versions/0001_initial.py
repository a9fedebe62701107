"""Packages, key slots, encrypted index, holdings, usage and upload batches.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01 00:00:00
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(36)
ACCOUNT_ID = sa.String(64)
UID = sa.String(64)


def _ts(name: str, *, nullable: bool = False) -> sa.Column[dt.datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(name: str, target: str) -> sa.Column[str]:
    return sa.Column(name, ID, sa.ForeignKey(target, ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("id", ID, primary_key=True),
        sa.Column("institution_id", ACCOUNT_ID, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("key_check", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        _ts("last_activity_at"),
        _ts("completed_at", nullable=True),
    )
    op.create_index("ix_packages_institution_id", "packages", ["institution_id"])

    op.create_table(
        "key_slots",
        sa.Column("id", ID, primary_key=True),
        _fk("package_id", "packages.id"),
        sa.Column("account_id", ACCOUNT_ID, nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("package_id", "account_id"),
    )
    op.create_index("ix_key_slots_account_id", "key_slots", ["account_id"])

    op.create_table(
        "patients",
        sa.Column("id", ID, primary_key=True),
        _fk("package_id", "packages.id"),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("package_id"),
    )

    op.create_table(
        "studies",
        sa.Column("id", ID, primary_key=True),
        _fk("package_id", "packages.id"),
        _fk("patient_id", "patients.id"),
        sa.Column("study_instance_uid", UID, nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("package_id", "study_instance_uid"),
    )

    op.create_table(
        "series",
        sa.Column("id", ID, primary_key=True),
        _fk("study_id", "studies.id"),
        sa.Column("series_instance_uid", UID, nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("study_id", "series_instance_uid"),
    )

    op.create_table(
        "instances",
        sa.Column("id", ID, primary_key=True),
        _fk("package_id", "packages.id"),
        _fk("study_id", "studies.id"),
        _fk("series_id", "series.id"),
        sa.Column("sop_instance_uid", UID, nullable=False),
        sa.Column("blob_key", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("crc32", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("segment_size", sa.Integer(), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("package_id", "sop_instance_uid"),
    )
    op.create_index("ix_instances_study_id", "instances", ["study_id"])
    op.create_index("ix_instances_series_id", "instances", ["series_id"])

    op.create_table(
        "documents",
        sa.Column("id", ID, primary_key=True),
        _fk("package_id", "packages.id"),
        _fk("patient_id", "patients.id"),
        sa.Column("blob_key", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("crc32", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("segment_size", sa.Integer(), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_documents_package_id", "documents", ["package_id"])

    op.create_table(
        "holdings",
        sa.Column("id", ID, primary_key=True),
        sa.Column("account_id", ACCOUNT_ID, nullable=False),
        _fk("package_id", "packages.id"),
        sa.Column("item_kind", sa.String(16), nullable=False),
        sa.Column("item_id", ID, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("account_id", "item_id"),
    )
    op.create_index("ix_holdings_item_id", "holdings", ["item_id"])
    op.create_index("ix_holdings_account_id_created_at", "holdings", ["account_id", "created_at"])

    op.create_table(
        "account_usage",
        sa.Column("account_id", ACCOUNT_ID, primary_key=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
    )

    op.create_table(
        "upload_batches",
        sa.Column("id", ID, primary_key=True),
        sa.Column("account_id", ACCOUNT_ID, nullable=False),
        _fk("package_id", "packages.id"),
        sa.Column("reserved_bytes", sa.BigInteger(), nullable=False),
        _ts("heartbeat_at"),
        _ts("created_at"),
    )
    op.create_index("ix_upload_batches_account_id", "upload_batches", ["account_id"])
    op.create_index("ix_upload_batches_package_id", "upload_batches", ["package_id"])


def downgrade() -> None:
    for table in (
        "upload_batches",
        "account_usage",
        "holdings",
        "documents",
        "instances",
        "series",
        "studies",
        "patients",
        "key_slots",
        "packages",
    ):
        op.drop_table(table)
