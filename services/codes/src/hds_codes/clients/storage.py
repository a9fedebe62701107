"""Client of the storage service: package keys, key sessions, key slots, retention."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import BaseModel, ConfigDict

from hds_codes.clients.upstream import parse_answer, send, upstream_problem
from hds_codes.errors import PackageNotFound
from hds_common.crypto import PACKAGE_KEY_SIZE, b64d, seal_session_key
from hds_common.errors import BadGateway

__all__ = ["GRANT_HEADER", "PackageSession", "SlotAdded", "StorageClient"]

GRANT_HEADER = "X-HDS-Grant"
_SERVICE = "storage"


class SlotAdded(BaseModel):
    model_config = ConfigDict(extra="allow")

    package_id: str
    studies: int = 0
    documents: int = 0
    bytes: int = 0


class PackageSession(BaseModel):
    """A package key session at storage: its id (the token's ``ksid``) and its grant."""

    model_config = ConfigDict(extra="ignore")

    session_id: str
    grant: str
    expires_at: int


def _package_path(package_id: str, tail: str) -> str:
    return f"/internal/v1/packages/{quote(package_id, safe='')}/{tail}"


class StorageClient:
    def __init__(self, client: httpx.AsyncClient, grant_public_key: X25519PublicKey) -> None:
        self._client = client
        # Package keys travel to storage sealed to it, never in the clear.
        self._grant_public_key = grant_public_key

    def _sealed(self, package_id: str, package_key: bytes) -> str:
        return seal_session_key(
            self._grant_public_key, package_key, kind="package", subject=package_id
        )

    async def start_package_session(
        self, package_id: str, *, code_id: str, package_key: bytes, expires_at: int
    ) -> PackageSession:
        """Have storage hold the package key for a DLX token until ``expires_at``."""
        response = await send(
            self._client,
            _SERVICE,
            "POST",
            "/internal/v1/key-sessions",
            json={
                "kind": "package",
                "subject": package_id,
                "tag": code_id,
                "sealed_key": self._sealed(package_id, package_key),
                "expires_at": expires_at,
            },
        )
        if response.status_code != 201:
            raise upstream_problem(response, _SERVICE)
        return parse_answer(PackageSession, response, _SERVICE)

    async def end_code_sessions(self, package_id: str, *, code_id: str) -> None:
        """End the key sessions (and so the DLX tokens) a code's validations started."""
        response = await send(
            self._client,
            _SERVICE,
            "POST",
            "/internal/v1/key-sessions/end",
            json={"kind": "package", "subject": package_id, "tag": code_id},
        )
        if response.status_code != 200:
            raise upstream_problem(response, _SERVICE)

    async def package_key(self, package_id: str, *, user_grant: str) -> bytes:
        """The package key, released to the package's publishing institution only."""
        response = await send(
            self._client,
            _SERVICE,
            "GET",
            _package_path(package_id, "key"),
            headers={GRANT_HEADER: user_grant},
        )
        if response.status_code in (403, 404):
            # Someone else's package is reported like a missing one.
            raise PackageNotFound("no such package")
        if response.status_code != 200:
            raise upstream_problem(response, _SERVICE)
        try:
            key = b64d(response.json()["package_key"])
        except (ValueError, KeyError, TypeError):
            raise BadGateway("the storage service sent an unexpected answer") from None
        if len(key) != PACKAGE_KEY_SIZE:
            raise BadGateway("the storage service sent a malformed package key")
        return key

    async def keep_until(self, package_id: str, valid_until: dt.datetime) -> None:
        """Tell storage a code of the package is valid until ``valid_until``: retention
        keeps the institution's copy at least that long (plus its period)."""
        response = await send(
            self._client,
            _SERVICE,
            "PUT",
            _package_path(package_id, "retention"),
            json={"codes_valid_until": valid_until.isoformat()},
        )
        if response.status_code == 404:
            raise PackageNotFound("no such package")
        if response.status_code != 204:
            raise upstream_problem(response, _SERVICE)

    async def add_slot(self, package_id: str, *, account_id: str, package_key: bytes) -> SlotAdded:
        """Give ``account_id`` a key slot on the package and its items in the holdings."""
        response = await send(
            self._client,
            _SERVICE,
            "POST",
            _package_path(package_id, "slots"),
            json={
                "account_id": account_id,
                "sealed_package_key": self._sealed(package_id, package_key),
            },
        )
        if response.status_code not in (200, 201):
            raise upstream_problem(response, _SERVICE)
        return parse_answer(SlotAdded, response, _SERVICE)
