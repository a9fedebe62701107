"""Fixtures of the identity-service tests: a migrated PostgreSQL database (and a SQLite
file for the tests parametrised over both), a real SMTP server, the storage service's
grant key pair, and a running app with an httpx client. Helpers are in support.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hds_common.crypto import generate_private_key
from hds_common.db import migrate_service
from hds_common.testing.postgres import temporary_database
from hds_common.testing.smtp import SmtpTestServer
from tests.auth.support import Accounts, AppFactory, AuthApp, StorageStandIn, app_factory


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: run the test on PostgreSQL and on SQLite (as `backend`)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_databases"):
        metafunc.parametrize(
            "backend",
            [pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"],
            indirect=True,
        )


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as smtp:
        yield smtp


@pytest.fixture(scope="session")
async def postgresql_url() -> AsyncIterator[str]:
    async with temporary_database("hds_auth_t") as url:
        await migrate_service("hds_auth", url)
        yield url


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('auth-sqlite') / 'auth.db'}"
    await migrate_service("hds_auth", url)
    return url


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """``postgresql`` unless a test is marked ``both_databases``."""
    return str(getattr(request, "param", "postgresql"))


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{backend}_url"))


@pytest.fixture(scope="session")
def storage_grant_key() -> X25519PrivateKey:
    """The storage service's grant key pair; auth seals grants to its public half."""
    return generate_private_key()


@pytest.fixture(scope="session")
def signing_key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth-signing-keys")


@pytest.fixture
def storage_stand_in(storage_grant_key: X25519PrivateKey) -> StorageStandIn:
    return StorageStandIn(grant_key=storage_grant_key)


@pytest.fixture
def make_auth_app(
    database_url: str,
    signing_key_dir: Path,
    smtp_server: SmtpTestServer,
    storage_grant_key: X25519PrivateKey,
    storage_stand_in: StorageStandIn,
) -> AppFactory:
    return app_factory(
        database_url=database_url,
        signing_key_dir=signing_key_dir,
        smtp=smtp_server,
        storage_grant_key=storage_grant_key,
        storage_stand_in=storage_stand_in,
    )


@pytest.fixture
async def auth(make_auth_app: AppFactory) -> AsyncIterator[AuthApp]:
    async with make_auth_app() as harness:
        yield harness


@pytest.fixture
def accounts(auth: AuthApp, smtp_server: SmtpTestServer) -> Accounts:
    return Accounts(auth, smtp_server)
