"""Settings of the identity service (environment prefix ``HDS_AUTH_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from hds_common.settings import Argon2Settings, DatabaseServiceSettings

MIB = 1024 * 1024


class Settings(DatabaseServiceSettings, Argon2Settings):
    """Argon2id (Argon2Settings) costs the password hashes and key-encryption keys: the
    OWASP minimum by default."""

    model_config = SettingsConfigDict(env_prefix="HDS_AUTH_", extra="ignore")

    port: int = 8001
    # Embedded default: a SQLite file under ./var; production: postgresql://…
    database_url: str = "sqlite:///var/auth.db"

    # ES256 signing keys (PEM files); generated on first start when the directory is empty.
    signing_key_dir: Path = Path("var/keys/auth")
    # How often a replica looks for keys another replica (or the CLI) added.
    signing_key_rescan_seconds: float = Field(default=10.0, ge=0)
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=300)
    dlx_token_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    dlx_token_max_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    activation_ttl_seconds: int = Field(default=48 * 3600, ge=60)
    # How long an invitation link works; a resend starts the period again.
    invitation_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # The embedded default's demo institution, whose password is written to a file for
    # the developer: the one account whose secret anyone but its holder sees. Only with
    # HDS_ENVIRONMENT=development; refused otherwise.
    demo_institution: bool = False

    password_min_length: int = Field(default=10, ge=8)

    # Mail: with no SMTP host, mails are written as .eml files to the outbox directory.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    # Unset: STARTTLS when the server offers it; true: required; false: never.
    smtp_starttls: bool | None = None
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "HDS <no-reply@localhost>"
    outbox_dir: Path = Path("var/outbox")

    default_quota_mib: int = Field(default=1024, ge=0)
    # Institutions: what they publish is governed by retention, never evicted by a quota;
    # 0 means no quota at all, otherwise uploads past it are refused (507).
    institution_quota_mib: int = Field(default=0, ge=0)
    default_code_validity_days: int = Field(default=30, ge=30, le=90)
    # The storage service answers usage; a slow one must not slow /me down.
    storage_timeout_seconds: float = 2.0

    # Throttling of failed logins and password resets, per account and per client address.
    throttle_window_seconds: int = Field(default=900, ge=1)
    login_failures_per_account: int = Field(default=5, ge=1)
    login_failures_per_client: int = Field(default=20, ge=1)
    reset_failures_per_account: int = Field(default=5, ge=1)
    reset_failures_per_client: int = Field(default=10, ge=1)
    activation_resends_per_account: int = Field(default=5, ge=1)

    @model_validator(mode="after")
    def _dlx_default_within_maximum(self) -> Settings:
        if self.dlx_token_ttl_seconds > self.dlx_token_max_ttl_seconds:
            raise ValueError("HDS_AUTH_DLX_TOKEN_TTL_SECONDS exceeds the maximum")
        return self

    @model_validator(mode="after")
    def _demo_institution_only_in_development(self) -> Settings:
        if self.demo_institution and self.suite.environment != "development":
            raise ValueError(
                "HDS_AUTH_DEMO_INSTITUTION is for HDS_ENVIRONMENT=development only: its "
                "password is written to a file the operator can read"
            )
        return self

    @property
    def default_quota_bytes(self) -> int:
        return self.default_quota_mib * MIB

    @property
    def institution_quota_bytes(self) -> int | None:
        return self.institution_quota_mib * MIB or None
