"""Settings of the identity service (environment prefix ``HDS_AUTH_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hds_common.settings import SuiteSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HDS_AUTH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8001
    # Embedded default: a SQLite file under ./var; production: postgresql://…
    database_url: str = "sqlite:///var/auth.db"
    migrate_on_start: bool = True

    suite: SuiteSettings = Field(default_factory=SuiteSettings)
