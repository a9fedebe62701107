"""Settings of the encrypted storage service (environment prefix ``HDS_STORAGE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from hds_common.settings import DatabaseServiceSettings

__all__ = ["Settings"]


class Settings(DatabaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HDS_STORAGE_", extra="ignore")

    port: int = 8003
    # Embedded default: a SQLite file under ./var; production: postgresql://…
    database_url: str = "sqlite:///var/storage.db"
    # A directory (embedded default) or s3://bucket/prefix?endpoint=… (see hds_common.blobstore).
    blob_url: str = "var/blobs"
    # X25519 key to which grants are sealed, as HDS_KEY_PROVIDER finds it (a file path for
    # "file"; created on first start, mode 0600). Keep it off the database host.
    grant_private_key_file: str = "var/keys/storage-grant.key"

    # An open package completes on its own after this long without uploads.
    package_idle_timeout_seconds: float = Field(default=900.0, gt=0)
    # An upload whose heartbeat stopped this long ago belongs to a dead process: the
    # sweep frees its quota reservation and deletes the blobs it left without rows.
    upload_stale_seconds: float = Field(default=300.0, gt=0)
    upload_heartbeat_seconds: float = Field(default=30.0, gt=0)
    # Orphan sweep and idle-package completion run this often (and once at start).
    maintenance_interval_seconds: float = Field(default=300.0, gt=0)
    # Retention of published packages: kept while any of their access codes is valid,
    # plus this many days (fractions allowed), then deleted with a notice to the
    # institution (hds_storage.maintenance.retention). Quotas never delete published
    # packages.
    retention_days: float = Field(default=30.0, ge=0)
    # How much of a DICOM part may be buffered to parse its header (without pixel data).
    dicom_header_limit_bytes: int = Field(default=4 * 1024 * 1024, ge=4096)
    # A PDF report is held in memory (never on disk) to be parsed before it is accepted;
    # larger ones are refused with 413.
    pdf_limit_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Requests without Content-Length reserve quota in steps of this size.
    quota_reservation_step_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # Longest key session the identity and codes services may start (their tokens'
    # lifetimes are shorter), and how often ended and expired key sessions are deleted.
    key_session_max_seconds: float = Field(default=86400.0, gt=0)
    key_session_sweep_seconds: float = Field(default=30.0, gt=0)
    # Timeout of calls to the identity service (account quota, public keys, JWKS).
    auth_timeout_seconds: float = Field(default=10.0, gt=0)
