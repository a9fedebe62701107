"""Response bodies of the signing keys."""

from __future__ import annotations

from pydantic import BaseModel


class SigningKeyRotated(BaseModel):
    kid: str
    published_kids: list[str]
