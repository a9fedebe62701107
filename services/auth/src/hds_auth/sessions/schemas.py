"""Request and response bodies of login sessions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from hds_auth.schemas import (
    EmailText,
    Password,
    StrictModel,
)


class LoginRequest(StrictModel):
    # Not validated as an address: an unknown or odd address must get the same answer
    # as a wrong password.
    email: EmailText
    password: Password


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class RefreshRequest(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=200)
