"""Where a service's long-term keys come from: the one place that reads key material.

Two keys decide whether an operator holding the database can open anything: storage's
X25519 grant key (grants in tokens are sealed to it) and the codes lookup secret (codes are
found by an HMAC under it; with it, a code read off a carrier sheet finds its row and slot).
Neither needs to sit on the database host. The services ask a :class:`KeyProvider` for
them by reference (a setting) and never open key files themselves, so the keys can live
where the provider puts them:

* :class:`FileKeyProvider` (``HDS_KEY_PROVIDER=file``, today's only one): the reference is a
  file path, typically a mounted secret volume on the service's own host. Missing keys are
  created (mode 0600) on first use, as the embedded default needs.
* a secret-manager or KMS provider can follow behind the same two methods: the reference
  names the key there, and the provider fetches or unwraps it into memory at start, so it
  is never written to the host's disk. A key that must never leave an HSM fits as well:
  ``x25519_private_key`` may return a subclass of ``X25519PrivateKey`` whose ``exchange``
  runs in the HSM (grants are opened with ``exchange`` only).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Literal, Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hds_common.crypto import b64d, b64e, load_or_create_private_key
from hds_common.files import private_directory

__all__ = [
    "SECRET_SIZE",
    "FileKeyProvider",
    "KeyProvider",
    "KeyProviderName",
    "key_provider",
]

SECRET_SIZE = 32
KeyProviderName = Literal["file"]


class KeyProvider(Protocol):
    """The source of a service's long-term keys; ``ref`` is the key's reference setting."""

    def x25519_private_key(self, ref: str) -> X25519PrivateKey:
        """The X25519 private key named ``ref``."""
        ...

    def secret(self, ref: str) -> bytes:
        """The symmetric secret (at least :data:`SECRET_SIZE` bytes) named ``ref``."""
        ...


class FileKeyProvider:
    """Keys in files (base64url text), created with mode 0600 if absent.

    Creation writes a private temporary file and hard-links it into place, so concurrent
    first starts (replicas, processes) never see a partial file and all end up with the
    same key."""

    def __repr__(self) -> str:
        return "FileKeyProvider()"

    def x25519_private_key(self, ref: str) -> X25519PrivateKey:
        return load_or_create_private_key(Path(ref))

    def secret(self, ref: str) -> bytes:
        path = Path(ref)
        if path.exists():
            return _read_secret(path)
        private_directory(path.parent)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        secret = secrets.token_bytes(SECRET_SIZE)
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
    if len(secret) < SECRET_SIZE:
        raise RuntimeError(f"{path} holds a secret shorter than {SECRET_SIZE} bytes")
    return secret


def key_provider(name: KeyProviderName) -> KeyProvider:
    """The provider ``HDS_KEY_PROVIDER`` names."""
    if name == "file":
        return FileKeyProvider()
    raise ValueError(f"unknown key provider {name!r}")
