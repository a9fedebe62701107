"""Package keys, per-object key derivation, X25519 key helpers and base64url."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hds_common.files import private_directory

from ._errors import CryptoError

__all__ = [
    "PACKAGE_KEY_SIZE",
    "X25519_KEY_SIZE",
    "b64d",
    "b64e",
    "derive_object_key",
    "generate_package_key",
    "generate_private_key",
    "hkdf_sha256",
    "load_or_create_private_key",
    "private_key_from_bytes",
    "private_key_to_bytes",
    "public_key_from_bytes",
    "public_key_to_bytes",
]

PACKAGE_KEY_SIZE = 32
X25519_KEY_SIZE = 32
_OBJECT_KEY_INFO = b"hds/object/v1"
_B64URL = re.compile(rb"[A-Za-z0-9_-]*")


def generate_package_key() -> bytes:
    """Return a fresh random 256-bit package key (PK)."""
    return secrets.token_bytes(PACKAGE_KEY_SIZE)


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) extract-and-expand; exposed so it can be checked against the RFC."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def derive_object_key(package_key: bytes, object_id: str) -> bytes:
    """DEK for one stored object: HKDF-SHA256(PK, salt=None, info="hds/object/v1" || object_id).

    The fixed-length prefix keeps the info string unambiguous without a separator.
    """
    if len(package_key) != PACKAGE_KEY_SIZE:
        raise ValueError(f"package key must be {PACKAGE_KEY_SIZE} bytes")
    if not object_id:
        # Distinct object ids are what stop objects being swapped; an empty id is a bug.
        raise ValueError("object id must not be empty")
    return hkdf_sha256(package_key, salt=None, info=_OBJECT_KEY_INFO + object_id.encode("utf-8"))


def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def private_key_to_bytes(key: X25519PrivateKey) -> bytes:
    """Raw 32-byte X25519 private key."""
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


def private_key_from_bytes(data: bytes) -> X25519PrivateKey:
    if len(data) != X25519_KEY_SIZE:
        raise ValueError(f"X25519 private key must be {X25519_KEY_SIZE} bytes")
    return X25519PrivateKey.from_private_bytes(data)


def public_key_to_bytes(key: X25519PublicKey) -> bytes:
    """Raw 32-byte X25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_bytes(data: bytes) -> X25519PublicKey:
    if len(data) != X25519_KEY_SIZE:
        raise ValueError(f"X25519 public key must be {X25519_KEY_SIZE} bytes")
    return X25519PublicKey.from_public_bytes(data)


def b64e(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str | bytes) -> bytes:
    """Strict inverse of :func:`b64e`; raises ``ValueError`` on anything it would not produce.

    ``base64.urlsafe_b64decode`` silently skips foreign characters, which would let
    distinct strings decode to the same bytes, so the alphabet is checked explicitly.
    """
    try:
        raw = text.encode("ascii") if isinstance(text, str) else bytes(text)
    except UnicodeEncodeError as exc:
        raise ValueError("invalid base64url text") from exc
    if not _B64URL.fullmatch(raw) or len(raw) % 4 == 1:
        raise ValueError("invalid base64url text")
    try:
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except binascii.Error as exc:
        raise ValueError("invalid base64url text") from exc


def _read_private_key(path: Path) -> X25519PrivateKey:
    try:
        data = b64d(path.read_bytes().strip())
        return private_key_from_bytes(data)
    except ValueError as exc:
        raise CryptoError(f"{path} does not hold a base64url X25519 private key") from exc


def load_or_create_private_key(path: Path) -> X25519PrivateKey:
    """Load the service's X25519 key from *path*, creating it (mode 0600) if it does not exist.

    The file holds the raw 32-byte key as base64url text. Creation writes a private
    temporary file and hard-links it into place, so concurrent starters never see a
    partial file and never overwrite each other's key: the loser of the race reads
    the winner's key.
    """
    path = Path(path)
    if path.exists():
        return _read_private_key(path)

    key = generate_private_key()
    private_directory(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(b64e(private_key_to_bytes(key)).encode("ascii") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_private_key(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)
    return key


def _fsync_dir(directory: Path) -> None:
    # Makes the new directory entry durable; not every platform/filesystem allows it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
