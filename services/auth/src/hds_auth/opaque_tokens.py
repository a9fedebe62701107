"""Opaque bearer secrets (activation links, refresh tokens): ``base64url(id || secret)``.

The id finds the row; the 256-bit secret proves possession. Only SHA-256 of the secret is
stored — a slow hash adds nothing for a random 256-bit value — and it is compared in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from hds_common.crypto import b64d, b64e

__all__ = [
    "hash_secret",
    "new_secret_token",
    "parse_secret_token",
    "row_of_token",
    "secret_matches",
]

SECRET_SIZE = 32
_ID_SIZE = 16


def new_secret_token(token_id: uuid.UUID) -> tuple[str, bytes]:
    """``(token text for the client, secret)``."""
    secret = secrets.token_bytes(SECRET_SIZE)
    return b64e(token_id.bytes + secret), secret


def parse_secret_token(text: str) -> tuple[uuid.UUID, bytes] | None:
    try:
        raw = b64d(text.strip())
    except ValueError:
        return None
    if len(raw) != _ID_SIZE + SECRET_SIZE:
        return None
    return uuid.UUID(bytes=raw[:_ID_SIZE]), raw[_ID_SIZE:]


def hash_secret(secret: bytes) -> bytes:
    return hashlib.sha256(secret).digest()


def secret_matches(stored_hash: bytes, secret: bytes) -> bool:
    return hmac.compare_digest(stored_hash, hash_secret(secret))


class SecretRow(Protocol):
    @property
    def secret_hash(self) -> bytes: ...


RowT = TypeVar("RowT", bound=SecretRow)


async def row_of_token(
    text: str, load: Callable[[uuid.UUID], Awaitable[RowT | None]]
) -> tuple[RowT, bytes] | None:
    """The row ``text`` names (``load`` finds it by id) and the token's secret, when the
    secret matches the row's hash; None for a malformed token, an unknown id or a wrong
    secret alike."""
    parsed = parse_secret_token(text)
    if parsed is None:
        return None
    token_id, secret = parsed
    row = await load(token_id)
    if row is None or not secret_matches(row.secret_hash, secret):
        return None
    return row, secret
