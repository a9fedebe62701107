"""Settings of the gateway (environment prefix ``HDS_GATEWAY_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hds_common.settings import SuiteSettings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HDS_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    suite: SuiteSettings = Field(default_factory=SuiteSettings)
