"""Settings of the encrypted storage service (environment prefix ``HDS_STORAGE_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hds_common.settings import SuiteSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HDS_STORAGE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8003
    # Embedded default: a SQLite file under ./var; production: postgresql://…
    database_url: str = "sqlite:///var/storage.db"
    migrate_on_start: bool = True

    suite: SuiteSettings = Field(default_factory=SuiteSettings)
