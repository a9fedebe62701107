"""Request and response bodies of the routes for the suite's services."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, Field

from hds_auth.schemas import (
    DeletionMode,
    Role,
    SingleLine,
    StrictModel,
)


class DlxTokenRequest(StrictModel):
    package_id: str = Field(min_length=1, max_length=100)
    code_id: str = Field(min_length=1, max_length=100)
    grant: str = Field(min_length=1, max_length=4096)
    key_session_id: str = Field(
        pattern=r"^[0-9a-f]{32}$", description="The package key session the grant names"
    )
    ttl_seconds: int | None = Field(default=None, ge=1)


class DlxToken(BaseModel):
    token: str
    expires_in: int


class InternalAccount(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    public_key: str
    quota_bytes: int | None = Field(description="null: no quota (institutions by default)")
    deletion_mode: DeletionMode
    # Activated and not disabled: only such an account can receive shares.
    active: bool
    notifications: bool
    accept_shares: bool
    name: str | None
    # Institutions only (null for everyone else).
    default_code_validity_days: int | None


class NotificationRequest(StrictModel):
    account_id: uuid.UUID
    subject: Annotated[SingleLine, Field(min_length=1, max_length=200)]
    text: str = Field(min_length=1, max_length=20_000)


class NotificationResult(BaseModel):
    sent: bool
