"""Tables of the identity service; one metadata, migrated by this service's Alembic.

No column ever holds a user's private key in the clear: it is stored wrapped under a
password KEK, a recovery-code KEK, and (per refresh token) a key derived from the refresh
token's secret, which the database does not hold either.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hds_common.db import NAMING_CONVENTION, UtcDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Stored lower-cased, so uniqueness ignores case.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    # Display name (institutions show theirs on carrier sheets and deliveries).
    name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))

    # The user's X25519 key pair: public in clear, private wrapped twice.
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    password_key_salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    password_key_kdf: Mapped[str] = mapped_column(String(64))
    password_wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    recovery_key_salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    recovery_key_kdf: Mapped[str] = mapped_column(String(64))
    recovery_wrapped_key: Mapped[bytes] = mapped_column(LargeBinary(128))

    activated_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)

    deletion_mode: Mapped[str] = mapped_column(String(20), default="automatic")
    notifications: Mapped[bool] = mapped_column(Boolean, default=True)
    accept_shares: Mapped[bool] = mapped_column(Boolean, default=False)
    # None: the suite default quota applies.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Institutions only: validity of new access codes (30 to 90 days).
    default_code_validity_days: Mapped[int | None] = mapped_column(Integer)

    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ActivationToken(Base):
    """A single-use activation link; only a hash of its secret is stored."""

    __tablename__ = "activation_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class Invitation(Base):
    """An account an administrator has offered, not yet accepted.

    Nothing here unlocks a key: the account, its key pair, its password and its recovery
    code come into being only when the invitee accepts the link mailed to the address;
    the database keeps a hash of the link's secret, never the secret."""

    __tablename__ = "invitations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # Stored lower-cased, like account addresses.
    email: Mapped[str] = mapped_column(String(320), index=True)
    role: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(200))
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    default_code_validity_days: Mapped[int | None] = mapped_column(Integer)
    # The administrator who invited; None when the command line did.
    invited_by: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    # When the current link was mailed; a resend replaces the secret and the expiry.
    sent_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL")
    )


class RefreshToken(Base):
    """One refresh token of a login session (a family); rotated on every use.

    ``wrapped_user_key`` is the user's private key wrapped under HKDF(token secret), so a
    refresh can issue a new grant without the password; a stolen database row alone
    opens nothing."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    wrapped_user_key: Mapped[bytes] = mapped_column(LargeBinary(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    # Set when the token was exchanged for its successor; a second use is a replay.
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)


class ThrottleCounter(Base):
    """Failure counters in a fixed window, shared by every replica through the database."""

    __tablename__ = "throttle_counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    count: Mapped[int] = mapped_column(Integer)
