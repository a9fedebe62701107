"""What the request and response bodies of several features share: roles, bounded
texts, the strict request model, an account's settings."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hds_auth.passwords.policy import MAX_PASSWORD_LENGTH

Role = Literal["patient", "referrer", "institution", "admin"]
SelfServiceRole = Literal["patient", "referrer"]
DeletionMode = Literal["automatic", "manual"]

# Names, addresses and mail subjects are stored (PostgreSQL text cannot hold NUL) or go
# into mail headers, where any line break (CR, LF, NEL, U+2028, ...) would end the
# header: no control characters and no line separators.
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
_NOT_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _single_line(value: str) -> str:
    if _NOT_SINGLE_LINE.search(value):
        raise ValueError("must not contain control characters (NUL, line breaks, tabs)")
    return value


SingleLine = Annotated[
    str, AfterValidator(_single_line), Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN})
]
# The largest value of the BIGINT column.
MAX_QUOTA_BYTES = 2**63 - 1

Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
CodeValidityDays = Annotated[int, Field(ge=30, le=90)]
DisplayName = Annotated[SingleLine, Field(min_length=1, max_length=200)]
EmailText = Annotated[SingleLine, Field(min_length=1, max_length=320)]
QuotaBytes = Annotated[int, Field(ge=0, le=MAX_QUOTA_BYTES)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountSettings(BaseModel):
    deletion_mode: DeletionMode
    notifications: bool
    accept_shares: bool
