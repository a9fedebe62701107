"""Tables of the encrypted storage service; one metadata, migrated by this service's Alembic.

What is stored in the clear: opaque ids (UUIDs), DICOM UIDs, sizes, CRC-32 and SHA-256 of
the plaintext, timestamps, account ids. Everything that identifies the patient or describes
the examination (names, patient ID, dates, descriptions, modality, SOP class, accession
number, document titles) lives in the ``meta`` columns, AES-GCM encrypted under a key
derived from the package key (:mod:`hds_storage.keys`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hds_common.db import NAMING_CONVENTION, UtcDateTime, utcnow

ID = String(36)
ACCOUNT_ID = String(64)
UID = String(64)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _timestamp(*, nullable: bool = False) -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=nullable)


class SealedIndexRow:
    """The columns of an index row (patient, study, series, instance, document): what
    describes it, sealed under its package's key (:class:`hds_storage.keys.MetaCipher`)."""

    meta: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = _timestamp()


class StoredObjectRow:
    """The columns of a row whose content is an encrypted blob (an instance, a document):
    the plaintext's size and digests, and the STREAM segment size it was encrypted with."""

    blob_key: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    crc32: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    segment_size: Mapped[int] = mapped_column(Integer)


class Package(Base):
    """What one access code unlocks: one patient's objects from one institution."""

    __tablename__ = "packages"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    institution_id: Mapped[str] = mapped_column(ACCOUNT_ID, index=True)
    state: Mapped[str] = mapped_column(String(16))  # "open" | "complete"
    # An empty record sealed under the package key: proves a presented key is this
    # package's key before anything is stored under it.
    key_check: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = _timestamp()
    last_activity_at: Mapped[dt.datetime] = _timestamp()
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The latest expiry of any access code issued for the package, as the codes service
    # reported it (only ever moved later). Retention keeps the institution's copy until
    # then plus the retention period (hds_storage.retention).
    codes_valid_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when retention removed the institution's copy: no code is issued or
    # reactivated for it any more.
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class KeySlot(Base):
    """The package key sealed to one account's X25519 public key."""

    __tablename__ = "key_slots"
    __table_args__ = (UniqueConstraint("package_id", "account_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(ACCOUNT_ID, index=True)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = _timestamp()


class Patient(SealedIndexRow, Base):
    __tablename__ = "patients"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    package_id: Mapped[str] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), unique=True
    )


class Study(SealedIndexRow, Base):
    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("package_id", "study_instance_uid"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    study_instance_uid: Mapped[str] = mapped_column(UID)


class Series(SealedIndexRow, Base):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("study_id", "series_instance_uid"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    series_instance_uid: Mapped[str] = mapped_column(UID)


class Instance(StoredObjectRow, SealedIndexRow, Base):
    """One DICOM Part 10 file, stored as the encrypted blob ``blob_key``."""

    __tablename__ = "instances"
    __table_args__ = (
        UniqueConstraint("package_id", "sop_instance_uid"),
        Index("ix_instances_study_id", "study_id"),
        Index("ix_instances_series_id", "series_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)  # the object id
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    series_id: Mapped[str] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"))
    sop_instance_uid: Mapped[str] = mapped_column(UID)


class Document(StoredObjectRow, SealedIndexRow, Base):
    """One PDF report, stored as the encrypted blob ``blob_key``."""

    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(ID, primary_key=True)  # item id and object id
    package_id: Mapped[str] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), index=True
    )
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))


class Share(Base):
    """An item (a study or a document) or a whole package one account gave another.

    A package share (an institution's delivery) names the package itself as its item.
    The recipient's copy is its holding; the share row records who gave it, so the
    sharer can list and revoke it. A share that did not fit the recipient's quota is
    ``waiting``: it holds nothing yet, only the package key already sealed to the
    recipient, until the recipient accepts it (when it fits) or declines it."""

    __tablename__ = "shares"
    __table_args__ = (UniqueConstraint("from_account_id", "to_account_id", "item_id"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    package_id: Mapped[str] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), index=True
    )
    item_kind: Mapped[str] = mapped_column(String(16))  # "study" | "document" | "package"
    item_id: Mapped[str] = mapped_column(ID)
    from_account_id: Mapped[str] = mapped_column(ACCOUNT_ID)
    to_account_id: Mapped[str] = mapped_column(ACCOUNT_ID, index=True)
    state: Mapped[str] = mapped_column(String(16), default="active")  # "active" | "waiting"
    # Waiting shares only: the package key sealed to the recipient (a key slot to be).
    sealed_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = _timestamp()


class Holding(Base):
    """An item (a whole study or a document) in an account's holdings; what quota counts."""

    __tablename__ = "holdings"
    __table_args__ = (
        UniqueConstraint("account_id", "item_id"),
        Index("ix_holdings_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ACCOUNT_ID)
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"))
    item_kind: Mapped[str] = mapped_column(String(16))  # "study" | "document"
    item_id: Mapped[str] = mapped_column(ID, index=True)
    # The share this holding came with; revoking that share removes it. Null when the
    # account got the item itself (upload, code import): no sharer can take that away.
    share_id: Mapped[str | None] = mapped_column(
        ForeignKey("shares.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = _timestamp()


class AccountUsage(Base):
    """Plaintext bytes of an account's holdings; its row is the account's quota lock."""

    __tablename__ = "account_usage"

    account_id: Mapped[str] = mapped_column(ACCOUNT_ID, primary_key=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class UploadBatch(Base):
    """One upload request in flight: its quota reservation and liveness.

    Blobs are written before their rows are committed; while a batch of a package is
    alive, blobs of that package without a row may still be about to be committed, so
    the orphan sweep leaves them alone. A batch whose heartbeat stopped (crashed
    process) is removed by the sweep, which frees its reservation and its blobs."""

    __tablename__ = "upload_batches"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    account_id: Mapped[str] = mapped_column(ACCOUNT_ID, index=True)
    package_id: Mapped[str] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), index=True
    )
    reserved_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    heartbeat_at: Mapped[dt.datetime] = _timestamp()
    created_at: Mapped[dt.datetime] = _timestamp()


class KeySession(Base):
    """A key a live session unlocked (a login's private key, a validated code's package
    key), wrapped under a secret that only the session's token carries.

    Deleting the row ends the session: no token, however old, opens the key again."""

    __tablename__ = "key_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "user" | "package"
    # The account id (kind user) or the package id (kind package).
    subject: Mapped[str] = mapped_column(ACCOUNT_ID)
    # What ends it besides its subject: a login's refresh family or a code's id.
    tag: Mapped[str | None] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)

    __table_args__ = (Index("ix_key_sessions_kind_subject_tag", "kind", "subject", "tag"),)
