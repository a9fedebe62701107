"""Grants: an unlocked key, sealed to the storage service, carried by a session as opaque text."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ._errors import CryptoError, GrantError
from ._keys import b64d, b64e
from ._slots import open_sealed, seal

__all__ = [
    "GRANT_CONTEXT",
    "MAX_GRANT_TOKEN_LENGTH",
    "Grant",
    "GrantKind",
    "open_grant",
    "seal_grant",
]

GRANT_CONTEXT = b"hds/grant/v1"
# Tokens arrive from clients; bound the work an attacker can make us do.
MAX_GRANT_TOKEN_LENGTH = 4096
_GRANT_VERSION = 1
_KEY_SIZE = 32

GrantKind = Literal["user", "package"]


@dataclass(frozen=True)
class Grant:
    """An unlocked key a session may use until *expires_at*.

    ``kind="user"``: *subject* is the account id, *key* the user's raw X25519 private key.
    ``kind="package"``: *subject* is the package id, *key* the 32-byte package key.
    """

    kind: GrantKind
    subject: str
    # Kept out of repr so a logged Grant never leaks key material.
    key: bytes = field(repr=False)
    expires_at: int

    def __post_init__(self) -> None:
        if self.kind not in ("user", "package"):
            raise ValueError("grant kind must be 'user' or 'package'")
        if not isinstance(self.subject, str) or not self.subject:
            raise ValueError("grant subject must be a non-empty string")
        if not isinstance(self.key, bytes) or len(self.key) != _KEY_SIZE:
            raise ValueError(f"grant key must be {_KEY_SIZE} bytes")
        if isinstance(self.expires_at, bool) or not isinstance(self.expires_at, int):
            raise ValueError("grant expires_at must be an int (unix seconds)")

    def is_expired(self, now: int | None = None) -> bool:
        return (int(time.time()) if now is None else now) >= self.expires_at


def seal_grant(storage_public_key: X25519PublicKey | bytes, grant: Grant) -> str:
    """Seal *grant* to the storage service; returns base64url text for a session to carry."""
    body = {
        "v": _GRANT_VERSION,
        "kind": grant.kind,
        "sub": grant.subject,
        "key": b64e(grant.key),
        "exp": grant.expires_at,
    }
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return b64e(seal(storage_public_key, payload, GRANT_CONTEXT))


def _parse(payload: bytes) -> Grant:
    body: Any = json.loads(payload)
    if not isinstance(body, dict) or set(body) != {"v", "kind", "sub", "key", "exp"}:
        raise ValueError("unexpected grant fields")
    if body["v"] != _GRANT_VERSION or not isinstance(body["key"], str):
        raise ValueError("unsupported grant")
    return Grant(
        kind=cast(GrantKind, body["kind"]),
        subject=body["sub"],
        key=b64d(body["key"]),
        expires_at=body["exp"],
    )


def open_grant(
    storage_private_key: X25519PrivateKey | bytes, token: str, *, now: int | None = None
) -> Grant:
    """Open a token from :func:`seal_grant`; :class:`GrantError` if malformed, not sealed
    to this key, or expired (``now >= expires_at``)."""
    if not isinstance(token, str) or len(token) > MAX_GRANT_TOKEN_LENGTH:
        raise GrantError("malformed grant")
    try:
        sealed = b64d(token)
    except ValueError:
        raise GrantError("malformed grant") from None
    try:
        payload = open_sealed(storage_private_key, sealed, GRANT_CONTEXT)
    except CryptoError:
        raise GrantError("grant cannot be opened") from None
    try:
        grant = _parse(payload)
    except ValueError:
        # Authentic but unparseable means a producer bug, still not something to honour.
        raise GrantError("malformed grant") from None
    if grant.is_expired(now):
        raise GrantError("grant expired")
    return grant
