"""The identity service's JWT signing keys (ES256, P-256) and the JWKS that publishes them.

Keys are PEM files in one directory (``HDS_AUTH_SIGNING_KEY_DIR``), shared by every
replica. A file name carries its creation time, ``es256-<UTC timestamp>.pem``; the newest
key signs. A key superseded by a newer one stays published for the longest token lifetime
(access token, or a DLX token at its maximum) plus five minutes after the newer key
appeared — every token it signed has expired by then — and is deleted at the next
rotation after that.

Key ids are RFC 7638 thumbprints of the public key, so they are stable wherever the key
is loaded and need no bookkeeping.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hds_auth.config import Settings
from hds_common.crypto import b64e
from hds_common.files import private_directory

__all__ = [
    "RETIREMENT_GRACE_SECONDS",
    "Keyring",
    "SigningKey",
    "jwk_thumbprint",
    "keyring_from",
]

RETIREMENT_GRACE_SECONDS = 300
_NAME = re.compile(r"^es256-(\d{8}T\d{6}\.\d{6})Z\.pem$")
_TIME_FORMAT = "%Y%m%dT%H%M%S.%f"


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return b64e(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created_at: dt.datetime
    path: Path
    private_pem: str = field(default="", repr=False)


def _public_jwk(private: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    numbers = private.public_key().public_numbers()
    jwk: dict[str, Any] = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64e(numbers.x.to_bytes(32, "big")),
        "y": b64e(numbers.y.to_bytes(32, "big")),
    }
    return {**jwk, "kid": jwk_thumbprint(jwk), "use": "sig", "alg": "ES256"}


def _load_private(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 private key")
    return key


class Keyring:
    """The signing keys in ``directory``; rescanned at most every ``rescan_seconds`` so a
    key added by another replica or the CLI is picked up without a restart.

    Implements :class:`hds_common.tokens.KeySource` for verifying this service's own
    tokens without an HTTP call to itself."""

    def __init__(
        self,
        directory: Path,
        *,
        token_lifetime: int,
        rescan_seconds: float = 10.0,
    ) -> None:
        self.directory = Path(directory)
        # The longest lifetime of any token this service signs.
        self.token_lifetime = token_lifetime
        self.rescan_seconds = rescan_seconds
        self._keys: list[SigningKey] = []
        self._jwks: dict[str, dict[str, Any]] = {}
        self._scanned_at = float("-inf")
        self._lock = threading.Lock()

    # -- loading ---------------------------------------------------------------------

    def ensure_key(self) -> SigningKey:
        """Load the keys, generating the first one if the directory has none."""
        self.reload()
        if not self._keys:
            self._write_new_key()
            self.reload()
        return self.current()

    def reload(self) -> None:
        keys: list[SigningKey] = []
        jwks: dict[str, dict[str, Any]] = {}
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("*.pem")):
                created_at = _created_at(path)
                pem = path.read_text(encoding="ascii")
                try:
                    jwk = _public_jwk(_load_private(pem.encode()))
                except ValueError:
                    continue  # a foreign file; never sign with what we cannot read
                keys.append(SigningKey(jwk["kid"], created_at, path, pem))
                jwks[jwk["kid"]] = jwk
        keys.sort(key=lambda key: (key.created_at, key.kid))
        with self._lock:
            self._keys = keys
            self._jwks = jwks
            self._scanned_at = time.monotonic()

    def _maybe_reload(self) -> None:
        if time.monotonic() - self._scanned_at >= self.rescan_seconds:
            self.reload()

    # -- use -------------------------------------------------------------------------

    def current(self) -> SigningKey:
        """The key that signs new tokens (the newest)."""
        self._maybe_reload()
        if not self._keys:
            raise RuntimeError(f"no signing key in {self.directory}")
        return self._keys[-1]

    def published(self, now: dt.datetime | None = None) -> list[SigningKey]:
        """The current key and every superseded key some unexpired token may carry."""
        self._maybe_reload()
        now = now or dt.datetime.now(dt.UTC)
        keep_for = dt.timedelta(seconds=self.token_lifetime + RETIREMENT_GRACE_SECONDS)
        published: list[SigningKey] = []
        for index, key in enumerate(self._keys):
            successor = self._keys[index + 1] if index + 1 < len(self._keys) else None
            if successor is None or now < successor.created_at + keep_for:
                published.append(key)
        return published

    def jwks(self, now: dt.datetime | None = None) -> dict[str, Any]:
        return {"keys": [self._jwks[key.kid] for key in self.published(now)]}

    async def get_key(self, kid: str) -> Mapping[str, Any] | None:
        """:class:`hds_common.tokens.KeySource`: the public JWK of a published key."""
        for key in self.published():
            if key.kid == kid:
                return self._jwks[kid]
        return None

    # -- rotation --------------------------------------------------------------------

    def rotate(self, now: dt.datetime | None = None) -> SigningKey:
        """Add a new current key; delete keys retired long enough that no token can use
        them. Returns the new key."""
        self.reload()
        path = self._write_new_key(now)
        self.reload()
        published = {key.kid for key in self.published(now)}
        for key in self._keys:
            if key.kid not in published:
                with contextlib.suppress(FileNotFoundError):
                    key.path.unlink()
        self.reload()
        return next(key for key in self._keys if key.path == path)

    def _write_new_key(self, now: dt.datetime | None = None) -> Path:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        private_directory(self.directory)
        created = now or dt.datetime.now(dt.UTC)
        tmp = self.directory / f".es256-{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            # Never overwrite: two replicas starting at once each add a key; both are valid.
            while True:
                path = self.directory / f"es256-{created.strftime(_TIME_FORMAT)}Z.pem"
                try:
                    os.link(tmp, path)
                    break
                except FileExistsError:
                    created += dt.timedelta(microseconds=1)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return path

    def keys(self) -> Sequence[SigningKey]:
        self._maybe_reload()
        return tuple(self._keys)


def keyring_from(settings: Settings) -> Keyring:
    return Keyring(
        settings.signing_key_dir,
        token_lifetime=max(settings.access_token_ttl_seconds, settings.dlx_token_max_ttl_seconds),
        rescan_seconds=settings.signing_key_rescan_seconds,
    )


def _created_at(path: Path) -> dt.datetime:
    match = _NAME.match(path.name)
    if match:
        return dt.datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=dt.UTC)
    # A key dropped in by hand: its modification time is the best we know.
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
