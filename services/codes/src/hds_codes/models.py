"""Tables of the access code service; one metadata, migrated by this service's Alembic.

Neither the code nor the birth date is stored: a code row holds the keyed lookup hash of
the code and the code key slot (the package key wrapped under Argon2id(code + birth
date, salt)). Without the code and the birth date the slot reveals nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import Index, Integer, LargeBinary, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hds_common.crypto import Argon2Params
from hds_common.db import NAMING_CONVENTION, UtcDateTime, utcnow

# The state of a code, derived from its row and the time (not stored).
CodeState = Literal["active", "locked", "expired", "revoked"]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AccessCode(Base):
    __tablename__ = "access_codes"
    __table_args__ = (Index(None, "institution_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    institution_id: Mapped[str] = mapped_column(String(64), nullable=False)
    package_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    # HMAC-SHA256(lookup secret, normalised code), hex.
    lookup_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    # The code key slot and the Argon2id parameters it was made with.
    kdf_salt: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    kdf_time_cost: Mapped[int] = mapped_column(Integer, nullable=False)
    kdf_memory_kib: Mapped[int] = mapped_column(Integer, nullable=False)
    kdf_parallelism: Mapped[int] = mapped_column(Integer, nullable=False)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(128), nullable=False)

    validity_days: Mapped[int] = mapped_column(Integer, nullable=False)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    reactivated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_validated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)

    # Lockout: failed answers since the last lock or success (attempts in flight count
    # as failed until they succeed), number of locks since the last success, and the
    # end of the current lock.
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    lock_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)

    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )


def slot_columns(salt: bytes, params: Argon2Params, wrapped_key: bytes) -> dict[str, Any]:
    """The columns of a code key slot: of a new code's row and of a re-made slot alike."""
    return {
        "kdf_salt": salt,
        "kdf_time_cost": params.time_cost,
        "kdf_memory_kib": params.memory_cost_kib,
        "kdf_parallelism": params.parallelism,
        "wrapped_key": wrapped_key,
    }


class ClientThrottle(Base):
    """Failed answers per client address (keyed hash) in a fixed window."""

    __tablename__ = "client_throttles"

    client_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False, index=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
