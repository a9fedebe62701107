"""Request and response bodies of the maintenance."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class RetentionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codes_valid_until: AwareDatetime = Field(description="Expiry of a code of the package")
