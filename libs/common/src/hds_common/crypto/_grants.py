"""Grants and key sessions: what a token carries, and what it opens on the server.

A session that unlocked a key (a login, a DLX ``/tokentfa``) never carries the key. The
storage service keeps it in a *key session*: the key wrapped with AES-256-GCM under
``HKDF(session secret, "hds/key-session/v1")`` (:func:`wrap_session_key`), the AAD naming
the session, its kind and its subject. The secret exists only in the session's grant,
which is sealed to the storage service's X25519 key (:func:`seal_grant`) and travels in
the token. When the session ends storage deletes the row; the grant then opens nothing,
whoever holds it and the storage key together.

On the way in (the identity or codes service handing storage the key it just unlocked)
the key travels sealed to storage as well (:func:`seal_session_key`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ._errors import CryptoError, GrantError
from ._keys import b64d, b64e, hkdf_sha256
from ._slots import open_sealed, seal, unwrap_key, wrap_key

__all__ = [
    "GRANT_CONTEXT",
    "MAX_GRANT_TOKEN_LENGTH",
    "SESSION_SECRET_SIZE",
    "Grant",
    "GrantKind",
    "open_grant",
    "open_session_key",
    "seal_grant",
    "seal_session_key",
    "unwrap_session_key",
    "wrap_session_key",
]

GRANT_CONTEXT = b"hds/grant/v2"
_SESSION_KEY_INFO = b"hds/key-session/v1"
_TRANSIT_PREFIX = b"hds/key-session-transit/v1:"
# Tokens arrive from clients; bound the work an attacker can make us do.
MAX_GRANT_TOKEN_LENGTH = 4096
_GRANT_VERSION = 2
SESSION_SECRET_SIZE = 32
_KEY_SIZE = 32
_FIELDS = {"v", "kind", "sub", "ks", "secret", "exp"}

GrantKind = Literal["user", "package"]


@dataclass(frozen=True)
class Grant:
    """A reference to a key session the bearer may use until *expires_at*.

    ``kind="user"``: *subject* is the account id and the session holds the user's X25519
    private key; ``kind="package"``: *subject* is the package id and the session holds
    the package key. *secret* opens the session's wrapped key; it holds no key itself.
    """

    kind: GrantKind
    subject: str
    session_id: str
    # Kept out of repr so a logged Grant never leaks the secret.
    secret: bytes = field(repr=False)
    expires_at: int

    def __post_init__(self) -> None:
        if self.kind not in ("user", "package"):
            raise ValueError("grant kind must be 'user' or 'package'")
        if not isinstance(self.subject, str) or not self.subject:
            raise ValueError("grant subject must be a non-empty string")
        if not isinstance(self.session_id, str) or not self.session_id:
            raise ValueError("grant session id must be a non-empty string")
        if not isinstance(self.secret, bytes) or len(self.secret) != SESSION_SECRET_SIZE:
            raise ValueError(f"grant secret must be {SESSION_SECRET_SIZE} bytes")
        if isinstance(self.expires_at, bool) or not isinstance(self.expires_at, int):
            raise ValueError("grant expires_at must be an int (unix seconds)")

    def is_expired(self, now: int | None = None) -> bool:
        return (int(time.time()) if now is None else now) >= self.expires_at


def seal_grant(storage_public_key: X25519PublicKey | bytes, grant: Grant) -> str:
    """Seal *grant* to the storage service; returns base64url text for a token to carry."""
    body = {
        "v": _GRANT_VERSION,
        "kind": grant.kind,
        "sub": grant.subject,
        "ks": grant.session_id,
        "secret": b64e(grant.secret),
        "exp": grant.expires_at,
    }
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return b64e(seal(storage_public_key, payload, GRANT_CONTEXT))


def _parse(payload: bytes) -> Grant:
    body: Any = json.loads(payload)
    if not isinstance(body, dict) or set(body) != _FIELDS:
        raise ValueError("unexpected grant fields")
    if body["v"] != _GRANT_VERSION or not isinstance(body["secret"], str):
        raise ValueError("unsupported grant")
    return Grant(
        kind=cast(GrantKind, body["kind"]),
        subject=body["sub"],
        session_id=body["ks"],
        secret=b64d(body["secret"]),
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


def _session_aad(session_id: str, kind: str, subject: str) -> bytes:
    return f"{session_id}\x00{kind}\x00{subject}".encode()


def wrap_session_key(
    secret: bytes, key: bytes, *, session_id: str, kind: GrantKind, subject: str
) -> bytes:
    """*key* wrapped under HKDF(*secret*), bound to the session, its kind and subject."""
    kek = hkdf_sha256(secret, salt=None, info=_SESSION_KEY_INFO)
    return wrap_key(kek, key, _session_aad(session_id, kind, subject))


def unwrap_session_key(
    secret: bytes, wrapped: bytes, *, session_id: str, kind: GrantKind, subject: str
) -> bytes:
    """Inverse of :func:`wrap_session_key`; :class:`IntegrityError` for a wrong secret."""
    kek = hkdf_sha256(secret, salt=None, info=_SESSION_KEY_INFO)
    return unwrap_key(kek, wrapped, _session_aad(session_id, kind, subject))


def _transit_context(kind: str, subject: str) -> bytes:
    return _TRANSIT_PREFIX + f"{kind}\x00{subject}".encode()


def seal_session_key(
    storage_public_key: X25519PublicKey | bytes, key: bytes, *, kind: GrantKind, subject: str
) -> str:
    """*key* sealed to the storage service for one internal call (start a key session,
    import a package): base64url text bound to the kind and subject."""
    if len(key) != _KEY_SIZE:
        raise ValueError(f"a session key must be {_KEY_SIZE} bytes")
    return b64e(seal(storage_public_key, key, _transit_context(kind, subject)))


def open_session_key(
    storage_private_key: X25519PrivateKey | bytes, text: str, *, kind: GrantKind, subject: str
) -> bytes:
    """Inverse of :func:`seal_session_key`; :class:`GrantError` if it does not open."""
    if not isinstance(text, str) or len(text) > MAX_GRANT_TOKEN_LENGTH:
        raise GrantError("malformed sealed key")
    try:
        key = open_sealed(storage_private_key, b64d(text), _transit_context(kind, subject))
    except (ValueError, CryptoError):
        raise GrantError("sealed key cannot be opened") from None
    if len(key) != _KEY_SIZE:
        raise GrantError("sealed key has the wrong size")
    return key
