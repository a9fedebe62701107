"""Settings shared by every service.

Each service has its own ``BaseSettings`` class with its own environment prefix
(``HDS_AUTH_``, ``HDS_STORAGE_`` …). Values that every service must agree on — where
the other services live, the JWT issuer, the internal service secret — live in
:class:`SuiteSettings` under the plain ``HDS_`` prefix and are nested into each
service's settings, so one variable configures the whole suite.

Every service's settings derive from :class:`ServiceSettings` (where it listens, the suite
settings); those with a database from :class:`DatabaseServiceSettings`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hds_common.crypto import Argon2Params, b64d, public_key_from_bytes

__all__ = [
    "PLACEHOLDER_SECRETS",
    "Argon2Settings",
    "DatabaseServiceSettings",
    "ServiceSettings",
    "SuiteSettings",
]

# Secrets that must never reach production: the embedded default writes real random
# secrets, but someone copying an example file would otherwise run with these.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "development"})


class SuiteSettings(BaseSettings):
    """Suite-wide settings, read from ``HDS_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="HDS_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = True

    # Where the services reach each other (internal network addresses).
    auth_url: str = "http://127.0.0.1:8001"
    codes_url: str = "http://127.0.0.1:8002"
    storage_url: str = "http://127.0.0.1:8003"
    dlx_url: str = "http://127.0.0.1:8004"
    # The public address of the gateway, used for portal links and QR codes.
    public_base_url: str = "http://127.0.0.1:8000"

    # Every service port (hds_common.serving): a connection must send complete request
    # headers within the header timeout (slowloris) and may not leave its body idle
    # longer than the body idle timeout (slow POST), idle keep-alive connections close
    # after the keep-alive timeout (keep it above the gateway's upstream keep-alive),
    # connections beyond the limit shed the waiting ones first, requests in flight beyond
    # theirs get 503, and bodies beyond the body limit 413 (large uploads are bounded by
    # their own routes: the gateway's ingest limit and storage's quota).
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_idle_timeout_seconds: float = Field(default=60.0, gt=0)
    http_keepalive_timeout_seconds: int = Field(default=5, ge=1)
    http_max_connections: int = Field(default=4096, ge=1)
    http_max_concurrent_requests: int = Field(default=1024, ge=1)
    http_max_body_bytes: int = Field(default=1024 * 1024, ge=0)

    jwt_issuer: str = "hds-auth"
    # Shared secret for internal service-to-service calls (HMAC, never sent in clear
    # form: only a MAC over service name and expiry travels). It also signs the client
    # address the gateway vouches for (hds_common.forwarded_client): the services believe
    # no X-Forwarded-For, from any peer.
    internal_secret: SecretStr = Field(default=SecretStr(""))
    # The storage service's X25519 public key (base64url), to which grants are sealed.
    grant_public_key: str = ""
    # Where long-term keys (storage's grant key, the codes lookup secret) come from
    # (hds_common.key_provider): "file" reads each from the path its setting names.
    key_provider: Literal["file"] = "file"
    # How long a service trusts its last answer that a token's session is live: a
    # logout, reset, revocation or disablement stops the token everywhere within this.
    session_check_seconds: float = Field(default=5.0, ge=0, le=30)

    @cached_property
    def grant_public_key_bytes(self) -> bytes | None:
        """The storage service's public key as 32 raw bytes, None when not set; parsed
        here once for the services that seal to it (auth, codes), at their start."""
        text = self.grant_public_key.strip()
        if not text:
            return None
        try:
            raw = b64d(text)
            public_key_from_bytes(raw)
        except ValueError as exc:
            raise ValueError("HDS_GRANT_PUBLIC_KEY is not a base64url X25519 public key") from exc
        return raw

    @cached_property
    def grant_public_x25519(self) -> X25519PublicKey | None:
        raw = self.grant_public_key_bytes
        return public_key_from_bytes(raw) if raw is not None else None

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> SuiteSettings:
        if (
            self.environment == "production"
            and self.internal_secret.get_secret_value() in PLACEHOLDER_SECRETS
        ):
            raise ValueError("HDS_INTERNAL_SECRET must be set to a random value in production")
        return self


class ServiceSettings(BaseSettings):
    """What every service has: where it listens, and the suite-wide settings. A service's
    class sets its own ``env_prefix`` and its defaults for ``host`` and ``port``."""

    model_config = SettingsConfigDict(extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000

    suite: SuiteSettings = Field(default_factory=SuiteSettings)


class DatabaseServiceSettings(ServiceSettings):
    """A service with its own database (SQLite under ./var on the embedded default,
    ``postgresql://…`` in production), migrated on start unless told otherwise."""

    database_url: str = "sqlite:///var/service.db"
    migrate_on_start: bool = True


class Argon2Settings(BaseSettings):
    """The Argon2id cost of a service that derives keys or hashes from secrets people
    type; mixed into its settings (``Settings(DatabaseServiceSettings, Argon2Settings)``),
    under its own prefix (``HDS_AUTH_ARGON2_TIME_COST`` …). The defaults are the OWASP
    minimum; a service that needs more cost declares the fields again with its own."""

    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19456, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)

    @property
    def argon2(self) -> Argon2Params:
        return Argon2Params(
            time_cost=self.argon2_time_cost,
            memory_cost_kib=self.argon2_memory_kib,
            parallelism=self.argon2_parallelism,
        )
