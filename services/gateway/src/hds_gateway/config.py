"""Settings of the gateway (environment prefix ``HDS_GATEWAY_``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from hds_common.settings import ServiceSettings

__all__ = ["GIB", "MIB", "Settings"]

MIB = 1024 * 1024
GIB = 1024 * MIB


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="HDS_GATEWAY_", extra="ignore", populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = 8000

    # Where a portal link without the X-DICOM-LINK-EXCHANGE header is sent (the SPA).
    spa_url: str = "http://127.0.0.1:5173"
    # SPA origins allowed to call the API from a browser (comma-separated); none: no CORS.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Addresses or networks of reverse proxies in front of the gateway (comma-separated):
    # only their X-Forwarded-For/-Proto/-Host are believed and extended.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Body size limits, checked from Content-Length up front and by counting while streaming.
    max_body_bytes: int = Field(default=1 * MIB, ge=0)
    max_ingest_body_bytes: int = Field(default=5 * GIB, ge=0)

    # Upstream connections: connect failure → 502, no answer within the read timeout → 504.
    upstream_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    upstream_read_timeout_seconds: float = Field(default=60.0, gt=0)
    upstream_max_connections: int = Field(default=256, ge=1)
    # Below uvicorn's 5 s keep-alive so that a pooled connection is never reused just as
    # the upstream closes it.
    upstream_keepalive_seconds: float = Field(default=4.0, gt=0)
    # Read buffer per proxied response, and the largest piece read at once from an upstream
    # for long bodies (hds_common.direct_body): memory per download stays below twice this.
    # Larger pieces mean fewer system calls per GB, but 1 MiB already leaves them negligible
    # (bench/bench_gateway.py).
    proxy_buffer_bytes: int = Field(default=1 * MIB, ge=64 * 1024)

    # The identity service's JWKS is refetched on an unknown key id at most this often.
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    jwks_max_age_seconds: float = Field(default=300.0, gt=0)
    # Verified tokens remembered until they expire (0: verify every request afresh).
    token_cache_size: int = Field(default=4096, ge=0)
    openapi_cache_seconds: float = Field(default=60.0, ge=0)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0)

    # Rate limits (fixed window; 0 disables a limit). Shared between replicas through Redis
    # when a URL is set, in memory otherwise.
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("HDS_GATEWAY_REDIS_URL", "REDIS_URL")
    )
    rate_limit_key_prefix: str = "hds:gateway:ratelimit:"
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    # Credential and access-code endpoints (login, registration, activation, reset,
    # DLX token/tokentfa, portal links): per client address.
    rate_limit_auth_per_address: int = Field(default=30, ge=0)
    # Everything else: per client address and per token subject.
    rate_limit_api_per_address: int = Field(default=1200, ge=0)
    rate_limit_api_per_subject: int = Field(default=600, ge=0)

    # Who may read the gateway's /metrics (everyone else gets 403): a scraper presenting
    # this token as "Authorization: Bearer …", or a client address (after
    # HDS_GATEWAY_TRUSTED_PROXIES) in these IPs/CIDRs. Neither set: nobody.
    metrics_token: SecretStr = Field(default=SecretStr(""))
    metrics_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", "trusted_proxies", "metrics_allow_ips", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("spa_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def upstream_urls(self) -> dict[str, str]:
        """Base URL of every upstream service, by name."""
        return {
            "auth": self.suite.auth_url.rstrip("/"),
            "codes": self.suite.codes_url.rstrip("/"),
            "storage": self.suite.storage_url.rstrip("/"),
            "dlx": self.suite.dlx_url.rstrip("/"),
        }
