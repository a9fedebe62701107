"""Calls to the identity and storage services (internal routes, service token)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from hds_common.crypto import PACKAGE_KEY_SIZE, b64d, seal_session_key
from hds_common.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    Unauthorized,
    UnprocessableContent,
)

__all__ = [
    "AccountInfo",
    "AuthClient",
    "PackageSession",
    "SlotAdded",
    "StorageClient",
    "upstream_problem",
]

GRANT_HEADER = "X-HDS-Grant"
_PROBLEM_PREFIX = "urn:hds:problem:"
_PASSED_THROUGH: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: UnprocessableContent,
    507: InsufficientStorage,
}
_STANDARD_MEMBERS = {"type", "title", "status", "detail", "instance", "request_id"}


class AccountInfo(BaseModel):
    """What codes needs of an account (the identity service sends more)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    role: str
    # Display name of the institution, printed on carrier sheets.
    name: str | None = Field(default=None, validation_alias=AliasChoices("name", "display_name"))
    # The institution's default validity of new codes.
    code_validity_days: int | None = Field(
        default=None,
        validation_alias=AliasChoices("default_code_validity_days", "code_validity_days"),
    )


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


def upstream_problem(response: httpx.Response, service: str) -> ProblemError:
    """The problem to answer for an upstream's error response: its own problem for the
    statuses a caller can act on (with its type and detail), 502 for anything else."""
    problem_class = _PASSED_THROUGH.get(response.status_code)
    if problem_class is None:
        return BadGateway(
            f"the {service} service answered {response.status_code}",
            slug="upstream-error",
        )
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    problem_type = body.get("type")
    slug = (
        problem_type.removeprefix(_PROBLEM_PREFIX)
        if isinstance(problem_type, str) and problem_type.startswith(_PROBLEM_PREFIX)
        else None
    )
    detail = body.get("detail") if isinstance(body.get("detail"), str) else None
    title = body.get("title") if isinstance(body.get("title"), str) else None
    extensions = {k: v for k, v in body.items() if k not in _STANDARD_MEMBERS}
    return problem_class(detail, slug=slug, title=title, **extensions)


async def _send(
    client: httpx.AsyncClient, service: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise GatewayTimeout(f"the {service} service did not answer in time") from None
    except httpx.TransportError:
        raise BadGateway(f"the {service} service is unreachable", slug="upstream-error") from None


class AuthClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def account(self, account_id: str) -> AccountInfo:
        response = await _send(
            self._client, "identity", "GET", f"/internal/v1/accounts/{quote(account_id, safe='')}"
        )
        if response.status_code == 404:
            raise Unauthorized("the account no longer exists", slug="account-unknown")
        if response.status_code != 200:
            raise upstream_problem(response, "identity")
        try:
            return AccountInfo.model_validate(response.json())
        except (ValueError, ValidationError):
            raise BadGateway("the identity service sent an unexpected answer") from None


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
        response = await _send(
            self._client,
            "storage",
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
            raise upstream_problem(response, "storage")
        try:
            return PackageSession.model_validate(response.json())
        except (ValueError, ValidationError):
            raise BadGateway("the storage service sent an unexpected answer") from None

    async def end_code_sessions(self, package_id: str, *, code_id: str) -> None:
        """End the key sessions (and so the DLX tokens) a code's validations started."""
        response = await _send(
            self._client,
            "storage",
            "POST",
            "/internal/v1/key-sessions/end",
            json={"kind": "package", "subject": package_id, "tag": code_id},
        )
        if response.status_code != 200:
            raise upstream_problem(response, "storage")

    async def package_key(self, package_id: str, *, user_grant: str) -> bytes:
        """The package key, released to the package's publishing institution only."""
        response = await _send(
            self._client,
            "storage",
            "GET",
            f"/internal/v1/packages/{quote(package_id, safe='')}/key",
            headers={GRANT_HEADER: user_grant},
        )
        if response.status_code in (403, 404):
            # Someone else's package is reported like a missing one.
            raise NotFound("no such package", slug="package-not-found")
        if response.status_code != 200:
            raise upstream_problem(response, "storage")
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
        response = await _send(
            self._client,
            "storage",
            "PUT",
            f"/internal/v1/packages/{quote(package_id, safe='')}/retention",
            json={"codes_valid_until": valid_until.isoformat()},
        )
        if response.status_code == 404:
            raise NotFound("no such package", slug="package-not-found")
        if response.status_code != 204:
            raise upstream_problem(response, "storage")

    async def add_slot(self, package_id: str, *, account_id: str, package_key: bytes) -> SlotAdded:
        """Give ``account_id`` a key slot on the package and its items in the holdings."""
        response = await _send(
            self._client,
            "storage",
            "POST",
            f"/internal/v1/packages/{quote(package_id, safe='')}/slots",
            json={
                "account_id": account_id,
                "sealed_package_key": self._sealed(package_id, package_key),
            },
        )
        if response.status_code not in (200, 201):
            raise upstream_problem(response, "storage")
        try:
            return SlotAdded.model_validate(response.json())
        except (ValueError, ValidationError):
            raise BadGateway("the storage service sent an unexpected answer") from None
