"""Keyed hashes: how a code is found without being stored.

A code is stored only as ``HMAC-SHA256(server secret, code)``. Without the secret, a
database dump cannot be searched for codes (60 bits are cheap to enumerate under a plain
hash); with it, the service finds a code's row in one indexed lookup. Client addresses
are kept under the same kind of hash, so the lockout table holds no addresses either.
"""

from __future__ import annotations

import hashlib
import hmac

from hds_common.crypto import SALT_SIZE
from hds_common.key_provider import SECRET_SIZE

__all__ = ["LookupKey"]

_CODE_CONTEXT = b"hds/codes/lookup/v1\x00"
_DUMMY_SALT_CONTEXT = b"hds/codes/dummy-salt/v1\x00"
_CLIENT_CONTEXT = b"hds/codes/client/v1\x00"


class LookupKey:
    """The server secret and the hashes made with it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SECRET_SIZE:
            raise ValueError(f"lookup secret must have at least {SECRET_SIZE} bytes")
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
