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

from hds_common.crypto import b64d, b64e

__all__ = ["hash_secret", "new_secret_token", "parse_secret_token", "secret_matches"]

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
