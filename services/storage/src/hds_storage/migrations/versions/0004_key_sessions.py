"""Key sessions: keys unlocked by live sessions, wrapped under the session's secret.

Revision ID: 0004_key_sessions
Revises: 0003_waiting_shares_retention
Create Date: 2026-12-04 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_key_sessions"
down_revision: str | None = "0003_waiting_shares_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("tag", sa.String(64), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_key_sessions_expires_at", "key_sessions", ["expires_at"])
    op.create_index("ix_key_sessions_kind_subject_tag", "key_sessions", ["kind", "subject", "tag"])


def downgrade() -> None:
    op.drop_table("key_sessions")
