"""Stand-ins for the DLX service's neighbours codes and auth in its tests (storage's is
in support_storage.py, its packages in support_packages.py).

They speak exactly the internal contracts of docs/architecture.md — service token on
``/internal`` routes, the same JSON shapes, status codes and problem types — with
in-memory data instead of databases and encryption. The lead runs the same flows against
the real services later.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header
from pydantic import BaseModel

from hds_common.app import create_service_app
from hds_common.errors import Forbidden, Unauthorized
from hds_common.service_auth import SERVICE_TOKEN_HEADER, verify_service_token
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import DLX_AUDIENCE

__all__ = ["AuthStandin", "CodesStandin", "IssuedCode", "service_dependency"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class InvalidCode(Unauthorized):
    slug = "invalid-code"


class CodeExpired(Forbidden):
    slug = "code-expired"


def service_dependency(secret: str) -> Any:
    """The service-token check of the real services' ``/internal`` routes."""

    def calling_service(
        token: Annotated[str | None, Header(alias=SERVICE_TOKEN_HEADER)] = None,
    ) -> str:
        return verify_service_token(secret, token)

    return Depends(calling_service)


# --- codes ------------------------------------------------------------------------------


@dataclass
class IssuedCode:
    code_id: str
    package_id: str
    birth_date: dt.date
    grant: str
    expires_at: dt.datetime
    grant_expires_at: dt.datetime
    # The package key session the grant names (storage answers its liveness).
    key_session_id: str = field(default_factory=lambda: secrets.token_hex(16))


class _Validate(BaseModel):
    code: str
    birth_date: dt.date
    client: str


class CodesStandin:
    """``POST /internal/v1/validate``: 200 | 401 (wrong, unknown, locked) | 403 (expired)."""

    max_failures = 3

    def __init__(self, secret: str) -> None:
        self.codes: dict[str, IssuedCode] = {}
        self.failures: Counter[str] = Counter()
        self.calls: list[dict[str, str]] = []
        self.app = create_service_app(
            service="codes-standin", title="codes stand-in", description=""
        )
        service = service_dependency(secret)

        @self.app.post("/internal/v1/validate", dependencies=[service])
        async def validate(body: _Validate) -> dict[str, str]:
            self.calls.append(
                {
                    "code": body.code,
                    "birth_date": body.birth_date.isoformat(),
                    "client": body.client,
                }
            )
            normalised = body.code.upper().replace("-", "").replace(" ", "")
            issued = self.codes.get(normalised)
            if issued is None or self.failures[normalised] >= self.max_failures:
                raise InvalidCode("invalid code")
            if body.birth_date != issued.birth_date:
                self.failures[normalised] += 1
                raise InvalidCode("invalid code")
            if issued.expires_at <= dt.datetime.now(dt.UTC):
                raise CodeExpired("code expired")
            self.failures[normalised] = 0
            return {
                "code_id": issued.code_id,
                "package_id": issued.package_id,
                "grant": issued.grant,
                "key_session_id": issued.key_session_id,
                "expires_at": issued.grant_expires_at.isoformat(),
                "code_expires_at": issued.expires_at.isoformat(),
            }

    def issue(
        self,
        *,
        package_id: str,
        birth_date: dt.date,
        grant: str,
        expires_in: dt.timedelta = dt.timedelta(days=30),
        grant_expires_in: dt.timedelta = dt.timedelta(hours=1),
    ) -> str:
        """A new code for the package, as printed: ``XXXX-XXXX-XXXX``."""
        raw = "".join(secrets.choice(_CROCKFORD) for _ in range(12))
        now = dt.datetime.now(dt.UTC)
        self.codes[raw] = IssuedCode(
            code_id=uuid.uuid4().hex,
            package_id=package_id,
            birth_date=birth_date,
            grant=grant,
            expires_at=now + expires_in,
            grant_expires_at=now + grant_expires_in,
        )
        return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"

    def issued(self, code: str) -> IssuedCode:
        return self.codes[code.replace("-", "")]


# --- auth -------------------------------------------------------------------------------


class _MintRequest(BaseModel):
    package_id: str
    code_id: str
    grant: str
    key_session_id: str
    ttl_seconds: int = 600


class AuthStandin:
    """The JWKS and ``POST /internal/v1/dlx-tokens``, signing with a :class:`TestIssuer`."""

    def __init__(self, secret: str, issuer: TestIssuer) -> None:
        self.issuer = issuer
        self.minted: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        self.app = create_service_app(service="auth-standin", title="auth stand-in", description="")
        service = service_dependency(secret)

        @self.app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            self.jwks_fetches += 1
            return issuer.jwks

        @self.app.post("/internal/v1/dlx-tokens", dependencies=[service])
        async def dlx_token(body: _MintRequest) -> dict[str, Any]:
            self.minted.append(body.model_dump())
            token = issuer.mint(
                body.code_id,
                audience=DLX_AUDIENCE,
                grant=body.grant,
                ttl=body.ttl_seconds,
                pkg=body.package_id,
                ksid=body.key_session_id,
            )
            return {"token": token, "expires_in": body.ttl_seconds}
