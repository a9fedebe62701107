"""Keyed hashes: how a code is found without being stored.

A code is stored only as ``HMAC-SHA256(server secret, code)``. Without the secret, a
database dump cannot be searched for codes (60 bits are cheap to enumerate under a plain
hash); with it, the service finds a code's row in one indexed lookup. Client addresses
are kept under the same kind of hash, so the lockout table holds no addresses either.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from hds_common.crypto import SALT_SIZE, b64d, b64e

__all__ = ["LookupKey", "load_or_create_secret"]

_SECRET_SIZE = 32
_CODE_CONTEXT = b"hds/codes/lookup/v1\x00"
_DUMMY_SALT_CONTEXT = b"hds/codes/dummy-salt/v1\x00"
_CLIENT_CONTEXT = b"hds/codes/client/v1\x00"


class LookupKey:
    """The server secret and the hashes made with it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < _SECRET_SIZE:
            raise ValueError(f"lookup secret must have at least {_SECRET_SIZE} bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "LookupKey(<secret>)"

    def _mac(self, context: bytes, value: bytes) -> bytes:
        return hmac.new(self._secret, context + value, hashlib.sha256).digest()

    def code_hash(self, normalised_code: str) -> str:
        """Lookup hash (hex) of a code in normal form."""
        return self._mac(_CODE_CONTEXT, normalised_code.encode("ascii")).hex()

    def dummy_salt(self, lookup_hash: str) -> bytes:
        """A salt for codes that do not exist, so they cost the same Argon2id run as real
        ones; stable per code, like a real salt."""
        return self._mac(_DUMMY_SALT_CONTEXT, lookup_hash.encode("ascii"))[:SALT_SIZE]

    def client_hash(self, client: str) -> str:
        return self._mac(_CLIENT_CONTEXT, client.encode("utf-8")).hex()


def load_or_create_secret(path: Path) -> bytes:
    """Read the secret (base64url text) from ``path``, creating it (mode 0600) if absent.

    A private temporary file is hard-linked into place, so concurrent first starts never
    see a partial file and all end up with the same secret."""
    path = Path(path)
    if path.exists():
        return _read_secret(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    secret = secrets.token_bytes(_SECRET_SIZE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(b64e(secret).encode("ascii") + b"\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_secret(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return secret


def _read_secret(path: Path) -> bytes:
    try:
        secret = b64d(path.read_bytes().strip())
    except ValueError:
        raise RuntimeError(f"{path} does not hold a base64url secret") from None
    if len(secret) < _SECRET_SIZE:
        raise RuntimeError(f"{path} holds a secret shorter than {_SECRET_SIZE} bytes")
    return secret
