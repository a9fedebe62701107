"""Key handling of the storage service: user key slots, encrypted metadata, sealed keys.

* A user key slot is the package key sealed to the account's X25519 public key
  (``hds_common.crypto.seal``), bound to the package id through the seal context.
* Metadata rows are AES-256-GCM encrypted JSON under ``HKDF(PK, "hds/meta/v1" ||
  package id)``; the AAD names the table and the row id, so an encrypted value cannot
  be moved to another row or table.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hds_common.crypto import (
    PACKAGE_KEY_SIZE,
    GrantError,
    IntegrityError,
    b64e,
    hkdf_sha256,
    open_sealed,
    open_session_key,
    private_key_from_bytes,
    public_key_to_bytes,
    seal,
)
from hds_storage.errors import GrantKeyRefused
from hds_storage.models import Package

__all__ = [
    "MetaCipher",
    "grant_public_key",
    "open_package_key",
    "open_slot",
    "seal_slot",
    "user_public_key",
]

_META_INFO = b"hds/meta/v1"
_NONCE_SIZE = 12


def _slot_context(package_id: str) -> bytes:
    return b"hds/user-slot/v1:" + package_id.encode()


def seal_slot(public_key: bytes, package_id: str, package_key: bytes) -> bytes:
    """The package key sealed to an account's public key."""
    return seal(public_key, package_key, _slot_context(package_id))


def open_slot(private_key: bytes, package_id: str, sealed_key: bytes) -> bytes:
    """Inverse of :func:`seal_slot`; :class:`IntegrityError` if the slot is not ours."""
    package_key = open_sealed(private_key, sealed_key, _slot_context(package_id))
    if len(package_key) != PACKAGE_KEY_SIZE:
        raise IntegrityError("key slot holds no package key")
    return package_key


def grant_public_key(grant_key: X25519PrivateKey) -> str:
    """The base64url X25519 public key grants must be sealed to (``HDS_GRANT_PUBLIC_KEY``)."""
    return b64e(public_key_to_bytes(grant_key.public_key()))


def user_public_key(private_key: bytes) -> bytes:
    return public_key_to_bytes(private_key_from_bytes(private_key).public_key())


class MetaCipher:
    """Encrypts and decrypts the metadata rows of one package."""

    __slots__ = ("_aead",)

    def __init__(self, package_key: bytes, package_id: str) -> None:
        key = hkdf_sha256(package_key, salt=None, info=_META_INFO + package_id.encode())
        self._aead = AESGCM(key)

    @staticmethod
    def _aad(table: str, row_id: str) -> bytes:
        return f"{table}\x00{row_id}".encode()

    def seal(self, table: str, row_id: str, values: dict[str, Any]) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        plaintext = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
        return nonce + self._aead.encrypt(nonce, plaintext, self._aad(table, row_id))

    def open(self, table: str, row_id: str, sealed: bytes) -> dict[str, Any]:
        if len(sealed) <= _NONCE_SIZE:
            raise IntegrityError(f"{table} {row_id}: metadata malformed")
        try:
            plaintext = self._aead.decrypt(
                sealed[:_NONCE_SIZE], sealed[_NONCE_SIZE:], self._aad(table, row_id)
            )
        except InvalidTag:
            raise IntegrityError(f"{table} {row_id}: metadata failed authentication") from None
        values = json.loads(plaintext)
        if not isinstance(values, dict):
            raise IntegrityError(f"{table} {row_id}: metadata malformed")
        return values

    def check(self, package_id: str, key_check: bytes) -> bool:
        """Whether this cipher's package key is the one ``key_check`` was sealed under."""
        try:
            self.open("packages", package_id, key_check)
        except IntegrityError:
            return False
        return True


def open_package_key(state_key: X25519PrivateKey, package: Package, sealed: str) -> bytes:
    """A package key sealed to this service for one call (an import), proven to be the
    package's key."""
    try:
        key = open_session_key(state_key, sealed, kind="package", subject=package.id)
    except GrantError:
        raise GrantKeyRefused(
            "the package key is not sealed to this service for this package"
        ) from None
    if not MetaCipher(key, package.id).check(package.id, package.key_check):
        raise GrantKeyRefused("the key does not open this package")
    return key
