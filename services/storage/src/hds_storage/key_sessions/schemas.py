"""Request and response bodies of the key sessions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from hds_storage.schemas import (
    ID_MAX_LENGTH,
    ID_PATTERN,
)

SessionKind = Literal["user", "package"]


SESSION_ID_PATTERN = r"^[0-9a-f]{32}$"


class KeySessionStart(BaseModel):
    kind: SessionKind
    subject: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        description="What else ends the session: a refresh family id, an access code id",
    )
    sealed_key: str = Field(
        min_length=1, max_length=4096, description="The key sealed to this service"
    )
    expires_at: int = Field(description="Unix seconds; no later than the token's expiry")


class KeySessionStarted(BaseModel):
    session_id: str = Field(description="Goes into the token as the ksid claim")
    grant: str = Field(description="Session id and secret sealed to this service")
    expires_at: int


class KeySessionsEnd(BaseModel):
    kind: SessionKind
    subject: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    tag: str | None = Field(
        default=None, min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN
    )
    keep_tag: str | None = Field(
        default=None, min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN
    )


class KeySessionsEnded(BaseModel):
    ended: int


class KeySessionLive(BaseModel):
    session_id: str
