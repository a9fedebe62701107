"""Request and response bodies of the institutions' code routes, and the fields the
other features' bodies share."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hds_codes.models import CodeState

# Ids of packages and codes are stored and looked up (PostgreSQL text cannot hold NUL)
# and sent to the storage service in URL paths: no control characters.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
ID_MAX_LENGTH = 64
# Offsets go to the database as BIGINT.
MAX_OFFSET = 2**63 - 1


def birth_date_field() -> Any:
    return Field(
        min_length=1,
        max_length=32,
        description="The patient's birth date, `YYYYMMDD` or `YYYY-MM-DD`.",
        examples=["19700131", "1970-01-31"],
    )


def code_field() -> Any:
    return Field(
        min_length=1,
        max_length=64,
        description="The access code in any case, with or without separators.",
        examples=["7K3Q-M9XD-2HVA"],
    )


class CodeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    package_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    birth_date: str = birth_date_field()
    validity_days: int | None = Field(
        default=None,
        description="Days until the code expires; default from the institution's settings.",
    )


class CodeIssued(BaseModel):
    """A new code. It is shown only now: the service keeps only a keyed hash of it."""

    id: str
    package_id: str
    code: str = Field(description="`XXXX-XXXX-XXXX`")
    link: str = Field(description="Portal link; the content of the QR code.")
    expires_at: dt.datetime
    validity_days: int
    qr_svg: str
    qr_png: str
    sheet_pdf: str


class CodePublic(BaseModel):
    id: str
    package_id: str
    state: CodeState
    validity_days: int
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    reactivated_at: dt.datetime | None
    last_validated_at: dt.datetime | None
    locked_until: dt.datetime | None
    failed_attempts: int


class CodePage(BaseModel):
    items: list[CodePublic]
    total: int
    limit: int
    offset: int


class CodeReactivate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    validity_days: int | None = Field(
        default=None,
        description="Days from now until the code expires; default from the institution's "
        "settings.",
    )
