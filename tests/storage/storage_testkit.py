"""Helpers for the storage service tests: a stand-in for the identity service, accounts
with real key pairs and grants, and the app wiring (DICOM and PDF content comes from
:mod:`hds_common.testing.dicom`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import Body, FastAPI, Header
from fastapi.responses import JSONResponse
from sqlalchemy import insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hds_common.blobstore import BlobStore
from hds_common.crypto import (
    SESSION_SECRET_SIZE,
    Grant,
    GrantKind,
    b64e,
    generate_private_key,
    load_or_create_private_key,
    private_key_to_bytes,
    public_key_to_bytes,
    seal_grant,
    seal_session_key,
    wrap_session_key,
)
from hds_common.db import create_engine
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token, verify_service_token
from hds_common.settings import SuiteSettings
from hds_common.testing.asgi import ServiceRouterTransport, running, serving
from hds_common.testing.dicom import DicomFile
from hds_common.testing.ports import free_port
from hds_common.testing.tokens import TestIssuer
from hds_storage.config import Settings
from hds_storage.main import create_app
from hds_storage.models import KeySession

GIB = 1024**3
INTERNAL_SECRET = "storage-test-internal-secret"
ISSUER = "hds-auth"
STORAGE_HOST = "storage.test"
IDENTITY_HOST = "identity-stand-in.test"


# -- content ----------------------------------------------------------------------------------


def multipart_files(files: Iterable[tuple[str, bytes]], **fields: str) -> dict[str, Any]:
    """``httpx`` keyword arguments for a multipart body of ``files`` (and form fields)."""
    return {
        "files": [("file", (name, data, "application/octet-stream")) for name, data in files],
        "data": fields,
    }


# -- the identity service stand-in ---------------------------------------------------------------


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
        from hds_common.crypto import private_key_from_bytes

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
        self.app = FastAPI(title="identity stand-in")

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


# -- key sessions ------------------------------------------------------------------------------


class KeySessionWriter:
    """Writes key sessions into the storage database at ``database_url``.

    Synchronous on purpose (test helpers build headers synchronously): the insert runs
    on a loop of its own in a worker thread. A session is reused while it has more than
    a minute to live."""

    def __init__(self, database_url: str, grant_public_key: bytes) -> None:
        self._database_url = database_url
        self._grant_public_key = grant_public_key
        self._cache: dict[tuple[str, str, bytes], tuple[str, str, int]] = {}

    def grant(self, kind: GrantKind, subject: str, key: bytes, ttl: int = 900) -> tuple[str, str]:
        """``(session id, grant)`` of a live key session holding ``key``."""
        cached = self._cache.get((kind, subject, key))
        if cached is not None and cached[2] - time.time() > 60:
            return cached[0], cached[1]
        session_id = secrets.token_hex(16)
        secret = os.urandom(SESSION_SECRET_SIZE)
        expires_at = int(time.time()) + ttl
        wrapped = wrap_session_key(secret, key, session_id=session_id, kind=kind, subject=subject)
        self._insert(session_id, kind, subject, wrapped, expires_at)
        grant = seal_grant(
            self._grant_public_key,
            Grant(
                kind=kind,
                subject=subject,
                session_id=session_id,
                secret=secret,
                expires_at=expires_at,
            ),
        )
        self._cache[(kind, subject, key)] = (session_id, grant, expires_at)
        return session_id, grant

    def forget(self) -> None:
        """Start new sessions from now on (after a test ended some)."""
        self._cache.clear()

    def _insert(
        self, session_id: str, kind: str, subject: str, wrapped: bytes, expires_at: int
    ) -> None:
        async def write() -> None:
            engine = create_engine(self._database_url)
            try:
                async with engine.begin() as connection:
                    await connection.execute(
                        insert(KeySession).values(
                            id=session_id,
                            kind=kind,
                            subject=subject,
                            tag=None,
                            wrapped_key=wrapped,
                            created_at=dt.datetime.now(dt.UTC),
                            expires_at=dt.datetime.fromtimestamp(expires_at, dt.UTC),
                        )
                    )
            finally:
                await engine.dispose()

        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(write())
            except BaseException as exc:  # re-raised in the calling thread
                failure.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        worker.join()
        if failure:
            raise failure[0]


def account_auth(
    issuer: TestIssuer, sessions: KeySessionWriter, account: TestAccount, *, grant: bool = True
) -> dict[str, str]:
    """``Authorization`` for an account token (with a user key session and its grant, as
    the identity service issues at login, unless ``grant=False``)."""
    claims: dict[str, Any] = {}
    if grant:
        session_id, user_grant = sessions.grant("user", account.id, account.private_key)
        claims = {"grant": user_grant, "ksid": session_id}
    token = issuer.mint(account.id, roles=[account.role], **claims)
    return {"Authorization": f"Bearer {token}"}


# -- the environment --------------------------------------------------------------------------


@dataclass
class StorageEnv:
    app: FastAPI
    client: httpx.AsyncClient
    identity: IdentityStandIn
    issuer: TestIssuer
    settings: Settings
    storage_public_key: bytes
    sessions: KeySessionWriter

    @property
    def store(self) -> BlobStore:
        store: BlobStore = self.app.state.storage.store
        return store

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.app.state.storage.engine
        return engine

    def account(self, role: str = "patient", **kwargs: Any) -> TestAccount:
        return self.identity.add(role, **kwargs)

    def institution(self, **kwargs: Any) -> TestAccount:
        return self.identity.add("institution", **kwargs)

    def user_grant(self, account: TestAccount, ttl: int = 900) -> str:
        return self.sessions.grant("user", account.id, account.private_key, ttl)[1]

    def package_grant(self, package_id: str, package_key: bytes, ttl: int = 600) -> str:
        return self.sessions.grant("package", package_id, package_key, ttl)[1]

    def sealed_package_key(self, package_id: str, package_key: bytes) -> str:
        return seal_session_key(
            self.storage_public_key, package_key, kind="package", subject=package_id
        )

    def auth(self, account: TestAccount, *, grant: bool = True) -> dict[str, str]:
        return account_auth(self.issuer, self.sessions, account, grant=grant)

    @staticmethod
    def service() -> dict[str, str]:
        return {SERVICE_TOKEN_HEADER: mint_service_token(INTERNAL_SECRET, "codes")}

    # -- common flows ---------------------------------------------------------------------

    async def create_package(self, institution: TestAccount) -> str:
        response = await self.client.post("/storage/v1/packages", headers=self.auth(institution))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def upload(
        self, institution: TestAccount, package_id: str, files: list[DicomFile]
    ) -> httpx.Response:
        return await self.client.post(
            f"/storage/v1/packages/{package_id}/instances",
            headers=self.auth(institution),
            **multipart_files((f"f{i}.dcm", f.data) for i, f in enumerate(files)),
        )

    async def upload_raw(
        self, institution: TestAccount, package_id: str, data: bytes
    ) -> httpx.Response:
        return await self.client.post(
            f"/storage/v1/packages/{package_id}/instances",
            headers={**self.auth(institution), "Content-Type": "application/dicom"},
            content=data,
        )

    async def complete(self, institution: TestAccount, package_id: str) -> None:
        response = await self.client.post(
            f"/storage/v1/packages/{package_id}/complete", headers=self.auth(institution)
        )
        assert response.status_code == 200, response.text

    async def package_key(self, institution: TestAccount, package_id: str) -> bytes:
        from hds_common.crypto import b64d

        response = await self.client.get(
            f"/internal/v1/packages/{package_id}/key",
            headers={**self.service(), "X-HDS-Grant": self.user_grant(institution)},
        )
        assert response.status_code == 200, response.text
        return b64d(response.json()["package_key"])

    async def publish(
        self, institution: TestAccount, files: list[DicomFile], *, complete: bool = True
    ) -> str:
        package_id = await self.create_package(institution)
        response = await self.upload(institution, package_id, files)
        assert response.status_code == 201, response.text
        if complete:
            await self.complete(institution, package_id)
        return package_id

    async def import_package(
        self, account: TestAccount, package_id: str, package_key: bytes
    ) -> httpx.Response:
        return await self.client.post(
            f"/internal/v1/packages/{package_id}/slots",
            headers=self.service(),
            json={
                "account_id": account.id,
                "sealed_package_key": self.sealed_package_key(package_id, package_key),
            },
        )

    async def usage(self, account: TestAccount) -> int:
        response = await self.client.get("/storage/v1/usage", headers=self.auth(account))
        assert response.status_code == 200, response.text
        return int(response.json()["used_bytes"])

    async def listed_bytes(self, account: TestAccount) -> int:
        studies = await self.client.get("/storage/v1/studies", headers=self.auth(account))
        documents = await self.client.get("/storage/v1/documents", headers=self.auth(account))
        assert studies.status_code == 200
        assert documents.status_code == 200
        items = [*studies.json(), *documents.json()]
        return sum(int(item["size"]) for item in items)

    async def blob_keys(self, prefix: str = "objects/") -> list[str]:
        return [info.key async for info in self.store.list(prefix)]

    async def count_rows(self, table: str) -> int:
        async with self.engine.connect() as connection:
            return int(
                (await connection.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar_one()
            )

    async def dump_tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table of the service's database."""
        async with self.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
            dump = {}
            for table in tables:
                rows = await connection.execute(text(f'SELECT * FROM "{table}"'))
                dump[table] = [tuple(row) for row in rows]
        return dump


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    blob_url: str


@asynccontextmanager
async def storage_env(
    backend: Backend, tmp_path: Path, **overrides: Any
) -> AsyncIterator[StorageEnv]:
    """The storage app with the identity stand-in behind a ServiceRouterTransport."""
    issuer = TestIssuer(issuer=ISSUER)
    identity = IdentityStandIn(issuer)
    key_file = tmp_path / "keys" / "storage-grant.key"
    storage_public_key = public_key_to_bytes(load_or_create_private_key(key_file).public_key())
    settings = Settings(
        database_url=backend.database_url,
        blob_url=backend.blob_url,
        grant_private_key_file=str(key_file),
        suite=SuiteSettings(
            auth_url=f"http://{IDENTITY_HOST}",
            internal_secret=INTERNAL_SECRET,  # type: ignore[arg-type]
            jwt_issuer=ISSUER,
            environment="test",
        ),
        **overrides,
    )
    transport = ServiceRouterTransport()
    transport.register(IDENTITY_HOST, identity.app)
    app = create_app(settings, transport=transport, token_keys=issuer.keys())
    transport.register(STORAGE_HOST, app)
    async with running(app):
        async with httpx.AsyncClient(
            transport=transport, base_url=f"http://{STORAGE_HOST}", timeout=60
        ) as client:
            yield StorageEnv(
                app,
                client,
                identity,
                issuer,
                settings,
                storage_public_key,
                KeySessionWriter(backend.database_url, storage_public_key),
            )


# -- the storage service as a real process ------------------------------------------------------


@asynccontextmanager
async def identity_server(identity: IdentityStandIn) -> AsyncIterator[str]:
    """Serve the identity stand-in over real HTTP (for a storage subprocess)."""
    async with serving(identity.app, lifespan="off") as url:
        yield url


class StorageProcess:
    """``python -m hds_storage serve`` with settings from the environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["HDS_STORAGE_PORT"])
        self.log_path = log_path
        self.proc: Any = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60.0) -> None:
        import asyncio
        import os
        import subprocess
        import sys

        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hds_storage", "serve"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"storage exited:\n{self.log_path.read_text()[-4000:]}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"storage not ready:\n{self.log_path.read_text()[-4000:]}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing — a crash."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


def process_env(
    *,
    database_url: str,
    blob_url: str,
    auth_url: str,
    key_file: Path,
    **extra: str,
) -> dict[str, str]:
    return {
        "HDS_STORAGE_PORT": str(free_port()),
        "HDS_STORAGE_DATABASE_URL": database_url,
        "HDS_STORAGE_BLOB_URL": blob_url,
        "HDS_STORAGE_GRANT_PRIVATE_KEY_FILE": str(key_file),
        "HDS_AUTH_URL": auth_url,
        "HDS_INTERNAL_SECRET": INTERNAL_SECRET,
        "HDS_JWT_ISSUER": ISSUER,
        "HDS_ENVIRONMENT": "test",
        "HDS_LOG_LEVEL": "WARNING",
        **extra,
    }
