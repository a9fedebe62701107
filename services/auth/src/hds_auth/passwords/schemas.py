"""Request and response bodies of password reset and change."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hds_auth.schemas import (
    EmailText,
    Password,
    StrictModel,
)


class PasswordResetRequest(StrictModel):
    email: EmailText
    recovery_code: str = Field(min_length=1, max_length=100)
    new_password: Password


class PasswordResetDone(BaseModel):
    recovery_code: str = Field(description="The new recovery code; the old one is void.")


class PasswordChangeRequest(StrictModel):
    current_password: Password
    new_password: Password
