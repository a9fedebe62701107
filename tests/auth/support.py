"""Helpers of the identity-service tests (fixtures are in conftest.py): settings for a
test app, the running app with its client, an account factory, and a stand-in for the
storage service's usage route."""

from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import Body, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from sqlalchemy import delete

from hds_auth.config import Settings
from hds_auth.invitations import service as invitations
from hds_auth.invitations.schemas import InvitationCreate
from hds_auth.main import create_app
from hds_auth.models import (
    Account,
    ActivationToken,
    Invitation,
    RefreshToken,
    ThrottleCounter,
)
from hds_auth.runtime import Runtime
from hds_common.crypto import (
    SESSION_SECRET_SIZE,
    Grant,
    GrantKind,
    b64e,
    open_grant,
    open_session_key,
    public_key_to_bytes,
    seal_grant,
    unwrap_session_key,
    wrap_session_key,
)
from hds_common.service_auth import SERVICE_TOKEN_HEADER, verify_service_token
from hds_common.settings import SuiteSettings
from hds_common.testing.asgi import ServiceRouterTransport, running
from hds_common.testing.smtp import SmtpTestServer
from hds_common.tokens import StaticKeys, TokenVerifier

INTERNAL_SECRET = "auth-tests-internal-secret-0123456789"
ISSUER = "hds-auth-test"
PUBLIC_BASE_URL = "https://portal.example.org"
STORAGE_HOST = "storage.internal"
PASSWORD = "correct horse battery staple"
ACTIVATION_LINK = re.compile(r"(https?://\S+/auth/v1/activate\?token=([A-Za-z0-9_-]+))")
RECOVERY_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$")
INVITATION_LINK = re.compile(r"(https?://\S+/auth/v1/invitation\?token=([A-Za-z0-9_-]+))")
Json = dict[str, Any]


@dataclass
class KeySessionRow:
    kind: GrantKind
    subject: str
    tag: str | None
    wrapped: bytes
    expires_at: int


@dataclass
class StorageStandIn:
    """Answers ``GET /internal/v1/usage/{id}`` and the key-session routes like the storage
    service (service token required, the same key-session construction), so the identity
    service can be tested without the real service. Usage is answered as storage answers
    it, ``{"used_bytes": n}`` and nothing else; ``received`` lists every request that
    reached it (``"GET /internal/v1/usage/…"``), to count what one request of the
    identity service asks of storage."""

    grant_key: X25519PrivateKey
    usage: dict[str, int] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    sessions: dict[str, KeySessionRow] = field(default_factory=dict)
    # The usage route answers 503 (the key-session routes go on working).
    usage_down: bool = False

    def open_key(self, grant_text: str, *, kind: GrantKind, subject: str) -> bytes:
        """What storage does with a grant: the key of the live session it names."""
        grant = open_grant(self.grant_key, grant_text)
        assert (grant.kind, grant.subject) == (kind, subject)
        row = self.sessions.get(grant.session_id)
        if row is None or row.expires_at <= time.time():
            raise LookupError("the key session has ended")
        return unwrap_session_key(
            grant.secret, row.wrapped, session_id=grant.session_id, kind=kind, subject=subject
        )

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def record(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            self.received.append(f"{request.method} {request.url.path}")
            return await call_next(request)

        @app.post("/internal/v1/key-sessions", status_code=201)
        async def start(
            body: dict[str, Any] = Body(),
            token: str | None = Header(default=None, alias=SERVICE_TOKEN_HEADER),
        ) -> dict[str, Any]:
            verify_service_token(INTERNAL_SECRET, token)
            kind, subject = body["kind"], body["subject"]
            key = open_session_key(self.grant_key, body["sealed_key"], kind=kind, subject=subject)
            session_id, secret = secrets.token_hex(16), os.urandom(SESSION_SECRET_SIZE)
            self.sessions[session_id] = KeySessionRow(
                kind,
                subject,
                body.get("tag"),
                wrap_session_key(secret, key, session_id=session_id, kind=kind, subject=subject),
                body["expires_at"],
            )
            grant = Grant(kind, subject, session_id, secret, body["expires_at"])
            return {
                "session_id": session_id,
                "grant": seal_grant(self.grant_key.public_key(), grant),
                "expires_at": body["expires_at"],
            }

        @app.post("/internal/v1/key-sessions/end")
        async def end(
            body: dict[str, Any] = Body(),
            token: str | None = Header(default=None, alias=SERVICE_TOKEN_HEADER),
        ) -> dict[str, int]:
            verify_service_token(INTERNAL_SECRET, token)
            ended = [
                session_id
                for session_id, row in self.sessions.items()
                if (row.kind, row.subject) == (body["kind"], body["subject"])
                and (body.get("tag") is None or row.tag == body["tag"])
                and (body.get("keep_tag") is None or row.tag != body["keep_tag"])
            ]
            for session_id in ended:
                del self.sessions[session_id]
            return {"ended": len(ended)}

        @app.get("/internal/v1/key-sessions/{session_id}")
        async def live(
            session_id: str,
            token: str | None = Header(default=None, alias=SERVICE_TOKEN_HEADER),
        ) -> JSONResponse:
            verify_service_token(INTERNAL_SECRET, token)
            row = self.sessions.get(session_id)
            if row is None or row.expires_at <= time.time():
                return JSONResponse({"type": "urn:hds:problem:not-found"}, status_code=404)
            return JSONResponse({"session_id": session_id})

        @app.get("/internal/v1/usage/{account_id}")
        async def usage(
            account_id: str,
            token: str | None = Header(default=None, alias=SERVICE_TOKEN_HEADER),
        ) -> Any:
            caller = verify_service_token(INTERNAL_SECRET, token)
            self.calls.append(caller)
            if self.usage_down:
                return JSONResponse({"type": "urn:hds:problem:down"}, status_code=503)
            return {"used_bytes": self.usage.get(account_id, 0)}

        return app


def make_settings(
    *,
    database_url: str,
    signing_key_dir: Path,
    smtp: SmtpTestServer | None,
    storage_public_key: bytes | None,
    outbox_dir: Path | None = None,
    **overrides: Any,
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "migrate_on_start": False,
        "signing_key_dir": signing_key_dir,
        # Far too weak for production; keeps the suite fast.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "smtp_host": smtp.host if smtp else "",
        "smtp_port": smtp.port if smtp else 25,
        "mail_from": "HDS Test <no-reply@hds.example.org>",
        "outbox_dir": outbox_dir or signing_key_dir.parent / "unused-outbox",
        "suite": SuiteSettings(
            environment="test",
            internal_secret=SecretStr(INTERNAL_SECRET),
            jwt_issuer=ISSUER,
            grant_public_key=b64e(storage_public_key) if storage_public_key else "",
            storage_url=f"http://{STORAGE_HOST}",
            public_base_url=PUBLIC_BASE_URL,
        ),
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class AuthApp:
    app: FastAPI
    client: httpx.AsyncClient
    transport: ServiceRouterTransport

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def client_from(self, address: str) -> httpx.AsyncClient:
        """A client whose requests come from ``address`` (for per-client throttling)."""
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=(address, 40000)),
            base_url="http://auth.internal",
        )

    async def jwks(self) -> Json:
        response = await self.client.get("/.well-known/jwks.json")
        assert response.status_code == 200
        jwks: Json = response.json()
        return jwks

    async def verifier(self) -> TokenVerifier:
        """A verifier as another service would build it, from the published JWKS."""
        return TokenVerifier(issuer=ISSUER, keys=StaticKeys(await self.jwks()))


AppFactory = Callable[..., AbstractAsyncContextManager[AuthApp]]


def app_factory(
    *,
    database_url: str,
    signing_key_dir: Path,
    smtp: SmtpTestServer,
    storage_grant_key: X25519PrivateKey,
    storage_stand_in: StorageStandIn,
) -> AppFactory:
    """``async with factory(**settings_overrides) as harness`` runs an app; its tables
    are emptied when it stops (the database lives for the whole session)."""

    @asynccontextmanager
    async def factory(*, with_storage: bool = True, **overrides: Any) -> AsyncIterator[AuthApp]:
        settings_kwargs: dict[str, Any] = {
            "database_url": database_url,
            "signing_key_dir": signing_key_dir,
            "smtp": smtp,
            "storage_public_key": public_key_to_bytes(storage_grant_key.public_key()),
        }
        for name in list(settings_kwargs):
            if name in overrides:
                settings_kwargs[name] = overrides.pop(name)
        settings = make_settings(**settings_kwargs, **overrides)
        transport = ServiceRouterTransport()
        if with_storage:
            transport.register(STORAGE_HOST, storage_stand_in.app())
        app = create_app(settings, transport=transport)
        async with (
            running(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://auth.internal"
            ) as client,
        ):
            try:
                yield AuthApp(app=app, client=client, transport=transport)
            finally:
                await wipe(app.state.runtime)

    return factory


async def wipe(runtime: Runtime) -> None:
    async with runtime.session_maker() as session, session.begin():
        for table in (ThrottleCounter, RefreshToken, ActivationToken, Invitation, Account):
            await session.execute(delete(table))


@dataclass
class TestAccount:
    __test__ = False

    id: str
    email: str
    password: str
    recovery_code: str
    role: str


class Accounts:
    """Creates accounts through the public API (or the service for privileged roles)."""

    def __init__(self, harness: AuthApp, smtp: SmtpTestServer) -> None:
        self.harness = harness
        self.smtp = smtp

    @staticmethod
    def new_email(prefix: str = "user") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}@example.org"

    async def register(
        self, *, email: str | None = None, password: str = PASSWORD, role: str = "patient"
    ) -> TestAccount:
        email = email or self.new_email(role)
        response = await self.harness.client.post(
            "/auth/v1/register", json={"email": email, "password": password, "role": role}
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return TestAccount(body["id"], email, password, body["recovery_code"], role)

    def activation_token(self, email: str) -> str:
        mails = self.smtp.messages_to(email)
        assert mails, f"no mail to {email}"
        match = ACTIVATION_LINK.search(str(mails[-1].get_content()))
        assert match, mails[-1].get_content()
        return match.group(2)

    async def activate(self, email: str) -> None:
        token = self.activation_token(email)
        response = await self.harness.client.get("/auth/v1/activate", params={"token": token})
        assert response.status_code == 200, response.text

    async def active(self, *, role: str = "patient", password: str = PASSWORD) -> TestAccount:
        if role in ("patient", "referrer"):
            account = await self.register(role=role, password=password)
            await self.activate(account.email)
            return account
        return await self.privileged(role=role, password=password)

    async def privileged(
        self, *, role: str, password: str = PASSWORD, name: str | None = None
    ) -> TestAccount:
        """Institutions and administrators are invited (here by the service call the
        command line makes) and accept the mailed link with their own password."""
        email = self.new_email(role)
        await self.invite(email=email, role=role, name=name)
        return await self.accept_invitation(email, password=password)

    async def invite(self, *, email: str, role: str, name: str | None = None) -> str:
        runtime = self.harness.runtime
        async with runtime.session_maker() as session, session.begin():
            invitation, mail_sent = await invitations.invite(
                session,
                runtime,
                InvitationCreate.model_validate({"email": email, "role": role, "name": name}),
            )
        assert mail_sent
        return str(invitation.id)

    def invitation_token(self, email: str) -> str:
        """The link of the newest invitation mail to ``email``."""
        for mail in reversed(self.smtp.messages_to(email)):
            match = INVITATION_LINK.search(str(mail.get_content()))
            if match:
                return match.group(2)
        raise AssertionError(f"no invitation mail to {email}")

    async def accept_invitation(self, email: str, *, password: str = PASSWORD) -> TestAccount:
        response = await self.harness.client.post(
            "/auth/v1/invitation/accept",
            json={"token": self.invitation_token(email), "password": password},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return TestAccount(body["account_id"], email, password, body["recovery_code"], body["role"])

    async def login(self, account: TestAccount, password: str | None = None) -> Json:
        response = await self.harness.client.post(
            "/auth/v1/login",
            json={"email": account.email, "password": password or account.password},
        )
        assert response.status_code == 200, response.text
        tokens: Json = response.json()
        return tokens


def bearer(tokens: Json | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


def without_request_id(body: Json) -> Json:
    return {key: value for key, value in body.items() if key != "request_id"}
