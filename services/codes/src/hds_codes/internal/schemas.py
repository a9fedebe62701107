"""Bodies of the routes for the suite's own services."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from hds_codes.codes.schemas import birth_date_field, code_field


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = code_field()
    birth_date: str = birth_date_field()
    client: str = Field(
        min_length=1,
        max_length=255,
        description="The end client's address, for the per-client failure limit.",
    )


class ValidateResult(BaseModel):
    code_id: str
    package_id: str
    grant: str = Field(
        description="The grant of a package key session held by the storage service."
    )
    key_session_id: str = Field(description="The key session (the DLX token's ksid claim).")
    expires_at: dt.datetime = Field(description="Expiry of the key session.")
    code_expires_at: dt.datetime = Field(description="Expiry of the access code.")


class CodesValidity(BaseModel):
    valid_until: dt.datetime | None = Field(
        description="When the package's last code stops (or stopped) being valid; a "
        "revoked code counts until its revocation. null: no code was ever issued"
    )
