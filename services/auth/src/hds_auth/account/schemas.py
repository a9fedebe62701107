"""Request and response bodies of the logged-in account."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, Field

from hds_auth.schemas import (
    AccountSettings,
    CodeValidityDays,
    DeletionMode,
    DisplayName,
    Role,
    StrictModel,
)


class InstitutionProfile(BaseModel):
    name: str | None
    default_code_validity_days: int


class Me(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    name: str | None
    created_at: dt.datetime
    public_key: str = Field(description="X25519 public key, base64url")
    settings: AccountSettings
    quota_bytes: int | None = Field(description="null: no quota (institutions by default)")
    used_bytes: int | None = Field(description="null when the storage service is unreachable")
    institution: InstitutionProfile | None


class SettingsUpdate(StrictModel):
    deletion_mode: DeletionMode | None = None
    notifications: bool | None = None
    accept_shares: bool | None = None
    name: DisplayName | None = None
    default_code_validity_days: CodeValidityDays | None = None


class PublicKey(BaseModel):
    account_id: uuid.UUID
    role: Role
    name: str | None
    public_key: str = Field(description="X25519 public key, base64url")
