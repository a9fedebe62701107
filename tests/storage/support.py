"""Helpers for the storage service tests: key sessions and grants, and the app wired to
the identity stand-in (:mod:`tests.storage.support_identity`; DICOM and PDF content
comes from :mod:`hds_common.testing.dicom`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hds_common.blobstore import BlobStore
from hds_common.crypto import (
    SESSION_SECRET_SIZE,
    Grant,
    GrantKind,
    load_or_create_private_key,
    public_key_to_bytes,
    seal_grant,
    seal_session_key,
    wrap_session_key,
)
from hds_common.db import create_engine
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token
from hds_common.settings import SuiteSettings
from hds_common.testing.asgi import ServiceRouterTransport, running
from hds_common.testing.dicom import DicomFile
from hds_common.testing.tokens import TestIssuer
from hds_storage.config import Settings
from hds_storage.main import create_app
from hds_storage.models import KeySession
from tests.storage.support_identity import (
    IDENTITY_HOST,
    INTERNAL_SECRET,
    ISSUER,
    IdentityStandIn,
    TestAccount,
)

STORAGE_HOST = "storage.test"


# -- content ----------------------------------------------------------------------------------


def multipart_files(files: Iterable[tuple[str, bytes]], **fields: str) -> dict[str, Any]:
    """``httpx`` keyword arguments for a multipart body of ``files`` (and form fields)."""
    return {
        "files": [("file", (name, data, "application/octet-stream")) for name, data in files],
        "data": fields,
    }


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
        store: BlobStore = self.app.state.runtime.store
        return store

    @property
    def engine(self) -> AsyncEngine:
        engine: AsyncEngine = self.app.state.runtime.engine
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
