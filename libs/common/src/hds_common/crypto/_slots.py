"""Key slots: Argon2id key-encryption keys, AES-GCM key wrapping, and X25519 sealing."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from argon2.exceptions import HashingError
from argon2.low_level import ARGON2_VERSION, Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import IntegrityError
from ._keys import (
    X25519_KEY_SIZE,
    hkdf_sha256,
    private_key_from_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
)

__all__ = [
    "DEFAULT_ARGON2",
    "FAST_ARGON2",
    "KEK_SIZE",
    "SALT_SIZE",
    "SEAL_VERSION",
    "WRAP_VERSION",
    "Argon2Params",
    "derive_kek",
    "generate_salt",
    "open_sealed",
    "seal",
    "unwrap_key",
    "wrap_key",
]

KEK_SIZE = 32
SALT_SIZE = 16
WRAP_VERSION = 1
SEAL_VERSION = 1
_NONCE_SIZE = 12
_TAG_SIZE = 16
_SEAL_INFO = b"hds/seal/v1"


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Argon2id cost parameters; store them next to each slot so they can be raised later."""

    time_cost: int
    memory_cost_kib: int
    parallelism: int

    def __post_init__(self) -> None:
        if self.time_cost < 1 or self.parallelism < 1:
            raise ValueError("time_cost and parallelism must be >= 1")
        if self.memory_cost_kib < 8 * self.parallelism:
            raise ValueError("memory_cost_kib must be >= 8 * parallelism")


# OWASP's minimum recommendation for Argon2id (19 MiB, 2 passes, 1 lane).
DEFAULT_ARGON2 = Argon2Params(time_cost=2, memory_cost_kib=19456, parallelism=1)
# Far too weak for real secrets; only so test suites stay fast.
FAST_ARGON2 = Argon2Params(time_cost=1, memory_cost_kib=1024, parallelism=1)


def generate_salt() -> bytes:
    """Fresh random salt for :func:`derive_kek`."""
    return secrets.token_bytes(SALT_SIZE)


def derive_kek(secret: bytes, salt: bytes, params: Argon2Params = DEFAULT_ARGON2) -> bytes:
    """32-byte key-encryption key = Argon2id(secret, salt, params) (version 0x13)."""
    if not secret:
        raise ValueError("secret must not be empty")
    if len(salt) < SALT_SIZE:
        raise ValueError(f"salt must be at least {SALT_SIZE} bytes")
    try:
        return hash_secret_raw(
            secret=secret,
            salt=salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_cost_kib,
            parallelism=params.parallelism,
            hash_len=KEK_SIZE,
            type=Type.ID,
            version=ARGON2_VERSION,
        )
    except HashingError as exc:
        raise ValueError(f"Argon2id failed: {exc}") from exc


def _check_key(key: bytes, what: str) -> None:
    if len(key) != KEK_SIZE:
        raise ValueError(f"{what} must be {KEK_SIZE} bytes")


def wrap_key(kek: bytes, key: bytes, aad: bytes) -> bytes:
    """Encrypt *key* under *kek*: ``version (1) | nonce (12) | ciphertext | tag (16)``.

    *aad* should name what the slot belongs to (e.g. package id + slot kind) so a wrapped
    key cannot be moved to another slot.
    """
    _check_key(kek, "KEK")
    if not key:
        raise ValueError("key must not be empty")
    nonce = os.urandom(_NONCE_SIZE)
    return bytes((WRAP_VERSION,)) + nonce + AESGCM(kek).encrypt(nonce, key, aad)


def unwrap_key(kek: bytes, wrapped: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`wrap_key`; :class:`IntegrityError` for a wrong KEK/aad or tampering."""
    _check_key(kek, "KEK")
    if len(wrapped) <= 1 + _NONCE_SIZE + _TAG_SIZE or wrapped[0] != WRAP_VERSION:
        raise IntegrityError("malformed wrapped key")
    nonce = wrapped[1 : 1 + _NONCE_SIZE]
    try:
        return AESGCM(kek).decrypt(nonce, wrapped[1 + _NONCE_SIZE :], aad)
    except InvalidTag:
        raise IntegrityError("wrapped key failed authentication") from None


def _public(key: X25519PublicKey | bytes) -> X25519PublicKey:
    return key if isinstance(key, X25519PublicKey) else public_key_from_bytes(bytes(key))


def _private(key: X25519PrivateKey | bytes) -> X25519PrivateKey:
    return key if isinstance(key, X25519PrivateKey) else private_key_from_bytes(bytes(key))


def _seal_key(shared: bytes, ephemeral_pub: bytes, recipient_pub: bytes, context: bytes) -> bytes:
    # Both public keys go into the salt so the key is bound to this exact exchange.
    return hkdf_sha256(shared, salt=ephemeral_pub + recipient_pub, info=_SEAL_INFO + context)


def seal(recipient_public_key: X25519PublicKey | bytes, plaintext: bytes, context: bytes) -> bytes:
    """Anonymous public-key encryption to *recipient_public_key* (ECIES over X25519).

    Output: ``version (1) | ephemeral public key (32) | nonce (12) | ciphertext | tag (16)``.
    *context* is both HKDF info suffix and AAD, so a sealed blob only opens for the same
    purpose it was sealed for.
    """
    recipient = _public(recipient_public_key)
    recipient_pub = public_key_to_bytes(recipient)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_pub = public_key_to_bytes(ephemeral.public_key())
    try:
        shared = ephemeral.exchange(recipient)
    except ValueError as exc:
        # cryptography rejects low-order points (all-zero shared secret).
        raise ValueError("invalid recipient public key") from exc
    key = _seal_key(shared, ephemeral_pub, recipient_pub, context)
    nonce = os.urandom(_NONCE_SIZE)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, context)
    return bytes((SEAL_VERSION,)) + ephemeral_pub + nonce + ciphertext


def open_sealed(
    recipient_private_key: X25519PrivateKey | bytes, sealed: bytes, context: bytes
) -> bytes:
    """Inverse of :func:`seal`; every failure (format, key, context, tampering) is an
    :class:`IntegrityError`."""
    private = _private(recipient_private_key)
    header = 1 + X25519_KEY_SIZE + _NONCE_SIZE
    if len(sealed) < header + _TAG_SIZE or sealed[0] != SEAL_VERSION:
        raise IntegrityError("malformed sealed box")
    ephemeral_pub = bytes(sealed[1 : 1 + X25519_KEY_SIZE])
    nonce = sealed[1 + X25519_KEY_SIZE : header]
    try:
        shared = private.exchange(public_key_from_bytes(ephemeral_pub))
    except ValueError:
        raise IntegrityError("sealed box failed authentication") from None
    key = _seal_key(shared, ephemeral_pub, public_key_to_bytes(private.public_key()), context)
    try:
        return AESGCM(key).decrypt(nonce, sealed[header:], context)
    except InvalidTag:
        raise IntegrityError("sealed box failed authentication") from None
