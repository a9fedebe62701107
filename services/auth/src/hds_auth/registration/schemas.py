"""Request and response bodies of registration and activation."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, EmailStr, Field

from hds_auth.schemas import (
    DisplayName,
    EmailText,
    Password,
    Role,
    SelfServiceRole,
    StrictModel,
)


class RegisterRequest(StrictModel):
    email: EmailStr
    password: Password
    role: SelfServiceRole = "patient"
    name: DisplayName | None = None


class AccountCreated(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    name: str | None
    activated: bool
    activation_mail_sent: bool
    recovery_code: str = Field(
        description="Shown exactly once: the only way to reset a forgotten password "
        "without losing data. Not stored anywhere in readable form."
    )


class ActivateRequest(StrictModel):
    token: str = Field(min_length=1, max_length=200)


class Activated(BaseModel):
    status: Literal["activated"] = "activated"
    account_id: uuid.UUID
    email: str


class ResendActivationRequest(StrictModel):
    email: EmailText


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
