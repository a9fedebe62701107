"""A user's X25519 key pair and the slots that keep its private key wrapped.

The private key is generated once, at registration, and never replaced: password reset
and change only rewrap it, so everything sealed to the public key stays readable.

Slots (``hds_common.crypto.wrap_key``, AAD naming purpose and account so a wrapped key
cannot be moved to another slot or account):

* password slot: KEK = Argon2id(password, salt) — unwrapped at login and password change;
* recovery slot: KEK = Argon2id(normalised recovery code, salt) — unwrapped at reset;
* refresh slot (one per refresh token): KEK = HKDF-SHA256(refresh token secret) — the
  token secret has 256 bits, so no slow hash is needed; the database holds only its hash.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from dataclasses import dataclass

from hds_common.crypto import (
    Argon2Params,
    IntegrityError,
    derive_kek,
    generate_private_key,
    generate_salt,
    hkdf_sha256,
    private_key_to_bytes,
    public_key_to_bytes,
    unwrap_key,
    wrap_key,
)

__all__ = [
    "KeySlot",
    "WrongSecret",
    "format_kdf",
    "generate_recovery_code",
    "new_user_key",
    "normalise_recovery_code",
    "parse_kdf",
    "unwrap_refresh_slot",
    "unwrap_slot",
    "wrap_refresh_slot",
    "wrap_slot",
]

# Crockford base32: no I, L, O, U, so a code read aloud or retyped is unambiguous.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RECOVERY_GROUPS = 5
_RECOVERY_GROUP_SIZE = 5  # 25 characters, 125 bits
_KDF_PATTERN = re.compile(r"^argon2id\$t=(\d+),m=(\d+),p=(\d+)$")
_REFRESH_KEY_INFO = b"hds/refresh-token-key/v1"


class WrongSecret(Exception):
    """The password or recovery code does not open the slot."""


@dataclass(frozen=True)
class KeySlot:
    salt: bytes
    kdf: str
    wrapped: bytes


def generate_recovery_code() -> str:
    chars = "".join(
        secrets.choice(_ALPHABET) for _ in range(_RECOVERY_GROUPS * _RECOVERY_GROUP_SIZE)
    )
    return "-".join(
        chars[i : i + _RECOVERY_GROUP_SIZE] for i in range(0, len(chars), _RECOVERY_GROUP_SIZE)
    )


def normalise_recovery_code(text: str) -> str:
    """Accept any case, spaces and dashes, and the look-alikes Crockford maps (O→0, I/L→1)."""
    cleaned = re.sub(r"[\s-]", "", text).upper()
    return cleaned.translate(str.maketrans("OIL", "011"))


def format_kdf(params: Argon2Params) -> str:
    return f"argon2id$t={params.time_cost},m={params.memory_cost_kib},p={params.parallelism}"


def parse_kdf(text: str) -> Argon2Params:
    match = _KDF_PATTERN.match(text)
    if not match:
        raise ValueError(f"unknown key derivation {text!r}")
    time_cost, memory, parallelism = (int(group) for group in match.groups())
    return Argon2Params(time_cost=time_cost, memory_cost_kib=memory, parallelism=parallelism)


def _aad(purpose: str, owner: uuid.UUID) -> bytes:
    return f"hds/user-key/v1/{purpose}/{owner}".encode()


def new_user_key() -> tuple[bytes, bytes]:
    """A fresh X25519 key pair as raw bytes: ``(private, public)``."""
    private = generate_private_key()
    return private_key_to_bytes(private), public_key_to_bytes(private.public_key())


async def wrap_slot(
    private_key: bytes,
    secret: str,
    *,
    purpose: str,
    account_id: uuid.UUID,
    params: Argon2Params,
) -> KeySlot:
    """Wrap ``private_key`` under Argon2id(``secret``) with a fresh salt."""
    salt = generate_salt()
    kek = await asyncio.to_thread(derive_kek, secret.encode(), salt, params)
    return KeySlot(
        salt=salt,
        kdf=format_kdf(params),
        wrapped=wrap_key(kek, private_key, _aad(purpose, account_id)),
    )


async def unwrap_slot(slot: KeySlot, secret: str, *, purpose: str, account_id: uuid.UUID) -> bytes:
    """The private key, or :class:`WrongSecret`; uses the parameters stored with the slot."""
    if not secret:
        raise WrongSecret
    kek = await asyncio.to_thread(derive_kek, secret.encode(), slot.salt, parse_kdf(slot.kdf))
    try:
        return unwrap_key(kek, slot.wrapped, _aad(purpose, account_id))
    except IntegrityError:
        raise WrongSecret from None


def _refresh_kek(token_secret: bytes) -> bytes:
    return hkdf_sha256(token_secret, salt=None, info=_REFRESH_KEY_INFO)


def wrap_refresh_slot(private_key: bytes, token_secret: bytes, token_id: uuid.UUID) -> bytes:
    return wrap_key(_refresh_kek(token_secret), private_key, _aad("refresh", token_id))


def unwrap_refresh_slot(wrapped: bytes, token_secret: bytes, token_id: uuid.UUID) -> bytes:
    try:
        return unwrap_key(_refresh_kek(token_secret), wrapped, _aad("refresh", token_id))
    except IntegrityError:
        raise WrongSecret from None
