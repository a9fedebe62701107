"""Request and response bodies of invitations."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

from pydantic import BaseModel, EmailStr, Field

from hds_auth.schemas import (
    CodeValidityDays,
    DisplayName,
    Password,
    QuotaBytes,
    Role,
    StrictModel,
)


class InvitationOffer(BaseModel):
    """What the invitee sees before accepting."""

    email: str
    role: Role
    name: str | None
    expires_at: dt.datetime


class InvitationAcceptRequest(StrictModel):
    token: str = Field(min_length=1, max_length=200)
    password: Password


class InvitationAccepted(BaseModel):
    account_id: uuid.UUID
    email: str
    role: Role
    name: str | None
    recovery_code: str = Field(
        description="Shown exactly once, here: the only way to reset a forgotten password "
        "without losing data. Not stored anywhere in readable form."
    )


class InvitationCreate(StrictModel):
    """An account offered to the holder of ``email``; no password: the invitee chooses it."""

    email: EmailStr
    role: Role
    name: DisplayName | None = None
    quota_bytes: QuotaBytes | None = None
    default_code_validity_days: CodeValidityDays | None = None


InvitationState = Literal["pending", "accepted", "expired", "revoked"]


class Invitation(BaseModel):
    """An invitation as administrators see it: that it exists and whether it was
    accepted, never anything that would open the account."""

    id: uuid.UUID
    email: str
    role: Role
    name: str | None
    quota_bytes: int | None
    default_code_validity_days: int | None
    state: InvitationState
    created_at: dt.datetime
    sent_at: dt.datetime
    expires_at: dt.datetime
    accepted_at: dt.datetime | None
    account_id: uuid.UUID | None = Field(description="The account, once accepted")
    mail_sent: bool | None = Field(
        default=None,
        description="After creating or resending: whether the mail server took the mail",
    )
