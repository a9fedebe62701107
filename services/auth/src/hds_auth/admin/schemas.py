"""Request and response bodies of account administration."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field

from hds_auth.schemas import (
    AccountSettings,
    CodeValidityDays,
    DisplayName,
    QuotaBytes,
    Role,
    StrictModel,
)


class AdminAccountUpdate(StrictModel):
    """Only the fields sent are changed; ``quota_bytes: null`` restores the default."""

    role: Role | None = None
    name: DisplayName | None = None
    activated: bool | None = None
    disabled: bool | None = None
    quota_bytes: QuotaBytes | None = None
    default_code_validity_days: CodeValidityDays | None = None


class AdminAccount(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    name: str | None
    activated: bool
    disabled: bool
    created_at: dt.datetime
    settings: AccountSettings
    quota_bytes: int | None = Field(description="null: no quota (institutions by default)")
    quota_is_default: bool
    default_code_validity_days: int | None
