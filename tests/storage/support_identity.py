"""The identity service as the storage tests see it: accounts with real key pairs, and a
stand-in serving what storage asks of auth (JWKS, account records, notifications). The
stand-in records every request storage makes to it, so a test can count them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Body, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from starlette.middleware.base import RequestResponseEndpoint

from hds_common.crypto import (
    b64e,
    generate_private_key,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_to_bytes,
)
from hds_common.service_auth import SERVICE_TOKEN_HEADER, verify_service_token
from hds_common.testing.asgi import serving
from hds_common.testing.tokens import TestIssuer

GIB = 1024**3
INTERNAL_SECRET = "storage-test-internal-secret"
ISSUER = "hds-auth"
IDENTITY_HOST = "identity-stand-in.test"


@dataclass
class TestAccount:
    __test__ = False

    id: str
    role: str
    private_key: bytes = field(repr=False)
    quota_bytes: int | None = GIB
    deletion_mode: str = "manual"
    # Activated and not disabled; receives shares (the two things sharing asks of auth).
    active: bool = True
    accept_shares: bool = True

    @property
    def email(self) -> str:
        return f"{self.id}@example.org"

    @property
    def public_key(self) -> bytes:
        return public_key_to_bytes(private_key_from_bytes(self.private_key).public_key())

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "public_key": b64e(self.public_key),
            "quota_bytes": self.quota_bytes,
            "deletion_mode": self.deletion_mode,
            "active": self.active,
            "notifications": False,
            "accept_shares": self.accept_shares,
        }


class IdentityStandIn:
    """Stand-in for the identity (auth) service in storage tests: serves the JWKS,
    ``GET /internal/v1/accounts/{id}`` and ``?email=`` from an in-memory dict, and takes
    ``POST /internal/v1/notifications`` into ``notes``, like auth's contract says."""

    def __init__(self, issuer: TestIssuer) -> None:
        self.issuer = issuer
        self.accounts: dict[str, TestAccount] = {}
        self.down = False
        # Notifications storage asked to mail; ``mail_failing`` makes the route fail.
        self.notes: list[dict[str, Any]] = []
        self.mail_failing = False
        # Every request storage made, as "METHOD /path" (the JWKS included).
        self.requests: list[str] = []
        self.app = FastAPI(title="identity stand-in")

        @self.app.middleware("http")
        async def record(request: Request, call_next: RequestResponseEndpoint) -> Response:
            self.requests.append(f"{request.method} {request.url.path}")
            return await call_next(request)

        @self.app.get("/internal/v1/accounts")
        async def account_by_email(
            email: str, token: str | None = Header(default=None, alias=SERVICE_TOKEN_HEADER)
        ) -> JSONResponse:
            verify_service_token(INTERNAL_SECRET, token)
            for found in self.accounts.values():
                if found.email == email.strip().lower():
                    return JSONResponse(found.record())
            return JSONResponse({"type": "urn:hds:problem:account-not-found"}, status_code=404)

        @self.app.post("/internal/v1/notifications")
        async def notify(
            note: dict[str, Any] = Body(),
            token: str | None = Header(default=None, alias=SERVICE_TOKEN_HEADER),
        ) -> JSONResponse:
            verify_service_token(INTERNAL_SECRET, token)
            if self.mail_failing:
                return JSONResponse({"type": "urn:hds:problem:mail-failed"}, status_code=502)
            self.notes.append(note)
            return JSONResponse({"sent": True}, status_code=202)

        @self.app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            return issuer.jwks

        @self.app.get("/internal/v1/accounts/{account_id}")
        async def account(
            account_id: str,
            token: str | None = Header(default=None, alias=SERVICE_TOKEN_HEADER),
        ) -> JSONResponse:
            if self.down:
                return JSONResponse({"type": "urn:hds:problem:down"}, status_code=503)
            verify_service_token(INTERNAL_SECRET, token)
            found = self.accounts.get(account_id)
            if found is None:
                return JSONResponse({"type": "urn:hds:problem:not-found"}, status_code=404)
            return JSONResponse(found.record())

    def add(self, role: str = "patient", **kwargs: Any) -> TestAccount:
        account = TestAccount(
            id=str(uuid.uuid4()),
            role=role,
            private_key=private_key_to_bytes(generate_private_key()),
            **kwargs,
        )
        self.accounts[account.id] = account
        return account


@asynccontextmanager
async def identity_server(identity: IdentityStandIn) -> AsyncIterator[str]:
    """Serve the identity stand-in over real HTTP (for a storage subprocess)."""
    async with serving(identity.app, lifespan="off") as url:
        yield url
