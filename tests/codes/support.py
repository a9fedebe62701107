"""Test harness of the access code service.

The codes app runs for real (its own database, Argon2id, lookup secret, lifespan); its
neighbours are the stand-ins of :mod:`tests.codes.support_standins`. The fixtures the
tests of codes and of the ``hds`` client share are defined here and named in their
conftest.py.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import FastAPI
from pydantic import SecretStr

from hds_codes.config import Settings
from hds_codes.main import create_app
from hds_codes.runtime import Runtime
from hds_common.crypto import FAST_ARGON2, generate_package_key
from hds_common.db import migrate_service
from hds_common.errors import PROBLEM_CONTENT_TYPE
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token
from hds_common.settings import SuiteSettings
from hds_common.testing.asgi import ServiceRouterTransport, running
from hds_common.testing.postgres import temporary_database
from hds_common.testing.tokens import TestIssuer
from tests.codes.support_standins import (
    AUTH_URL,
    INTERNAL_SECRET,
    PUBLIC_BASE,
    STORAGE_URL,
    Account,
    Neighbourhood,
    Package,
    SlotCall,
    stand_in_identity,
    stand_in_storage,
)

__all__ = [
    "INTERNAL_SECRET",
    "PUBLIC_BASE",
    "Account",
    "FakeClock",
    "Harness",
    "Issued",
    "Neighbourhood",
    "Package",
    "SlotCall",
    "assert_problem",
    "codes",
    "codes_harness",
    "hood",
    "issuer",
    "make_settings",
    "postgres_url",
    "stand_in_identity",
    "stand_in_storage",
    "storage_private_key",
    "unique_client",
]


# -- the codes app under test -------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Issued:
    id: str
    code: str
    package: Package
    institution: Account
    birth_date: str
    body: dict[str, Any]


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    hood: Neighbourhood
    clock: FakeClock
    settings: Settings
    router: ServiceRouterTransport

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def account(
        self,
        *,
        role: str = "institution",
        name: str = "Radiologie am See",
        code_validity_days: int | None = 45,
        password: str = "correct horse battery staple",
    ) -> Account:
        account_id = str(uuid.uuid4())
        account = Account(
            id=account_id,
            email=f"{account_id[:8]}@example.org",
            password=password,
            role=role,
            name=name,
            code_validity_days=code_validity_days,
        )
        self.hood.accounts[account.id] = account
        return account

    def package(self, owner: Account) -> Package:
        package = Package(id=str(uuid.uuid4()), owner=owner.id, key=generate_package_key())
        package.complete = True
        package.instances.append(b"\0" * 128 + b"DICM" + b"x" * 100)
        self.hood.packages[package.id] = package
        return package

    def auth(self, account: Account, *, grant: bool = True) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.hood.token(account, grant=grant)}"}

    async def issue(
        self,
        institution: Account | None = None,
        *,
        birth_date: str = "19700131",
        validity_days: int | None = None,
        package: Package | None = None,
    ) -> Issued:
        institution = institution or self.account()
        package = package or self.package(institution)
        body: dict[str, Any] = {"package_id": package.id, "birth_date": birth_date}
        if validity_days is not None:
            body["validity_days"] = validity_days
        response = await self.client.post(
            "/codes/v1/codes", json=body, headers=self.auth(institution)
        )
        assert response.status_code == 201, response.text
        data = response.json()
        return Issued(data["id"], data["code"], package, institution, birth_date, data)

    async def validate(
        self, code: str, birth_date: str, *, client: str | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/internal/v1/validate",
            json={"code": code, "birth_date": birth_date, "client": client or unique_client()},
            headers={SERVICE_TOKEN_HEADER: mint_service_token(INTERNAL_SECRET, "dlx")},
        )

    def delayed(self) -> float:
        """Validations slowed down so far because their client was over its allowance."""
        value = self.app.state.metrics_registry.get_sample_value(
            "hds_codes_client_delayed_total", {}
        )
        return float(value or 0.0)

    def metric(self, outcome: str) -> float:
        value = self.app.state.metrics_registry.get_sample_value(
            "hds_codes_validations_total", {"outcome": outcome}
        )
        return float(value or 0.0)


def unique_client() -> str:
    raw = secrets.token_bytes(3)
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


def make_settings(
    database_url: str, secret_file: Path, hood: Neighbourhood, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "migrate_on_start": False,
        "lookup_secret_file": secret_file,
        "argon2_time_cost": FAST_ARGON2.time_cost,
        "argon2_memory_kib": FAST_ARGON2.memory_cost_kib,
        "argon2_parallelism": FAST_ARGON2.parallelism,
        # Short, so tests can go past a client's allowance (the defaults wait seconds).
        "client_delay_seconds": 0.05,
        "client_delay_max_seconds": 0.2,
        "suite": SuiteSettings(
            environment="test",
            auth_url=AUTH_URL,
            storage_url=STORAGE_URL,
            public_base_url=PUBLIC_BASE,
            internal_secret=SecretStr(INTERNAL_SECRET),
            grant_public_key=hood.grant_public_key,
            jwt_issuer=hood.issuer.issuer,
        ),
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def codes_harness(
    database_url: str,
    secret_file: Path,
    hood: Neighbourhood,
    *,
    client_address: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    """The codes app with its stand-in neighbours, lifespans running."""
    settings = make_settings(database_url, secret_file, hood, **overrides)
    router = ServiceRouterTransport()
    app = create_app(settings, transport=router)
    router.register("auth.internal", stand_in_identity(hood))
    router.register("storage.internal", stand_in_storage(hood))
    router.register("codes.internal", app)
    clock = FakeClock()
    async with running(app):
        app.state.runtime.clock = clock
        transport = httpx.ASGITransport(app=app, client=(client_address or unique_client(), 4242))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://codes.internal"
        ) as client:
            yield Harness(app, client, hood, clock, settings, router)


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem of ``status`` with type ``slug``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_CONTENT_TYPE)
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:hds:problem:{slug}", body
    assert body["status"] == status
    return body


# -- fixtures (named in the conftest.py of tests/codes and tests/client) ----------------


@pytest.fixture(scope="session")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture(scope="session")
def storage_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def hood(issuer: TestIssuer, storage_private_key: X25519PrivateKey) -> Neighbourhood:
    return Neighbourhood(issuer=issuer, storage_private_key=storage_private_key)


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """One PostgreSQL database for the session, migrated by the service's Alembic."""
    async with temporary_database("hds_codes") as url:
        await migrate_service("hds_codes", url)
        yield url


@pytest.fixture
async def codes(postgres_url: str, tmp_path: Path, hood: Neighbourhood) -> AsyncIterator[Harness]:
    """The codes app on PostgreSQL with stand-in neighbours. Tests share the database but
    never each other's institutions, codes or client addresses."""
    async with codes_harness(postgres_url, tmp_path / "codes-lookup.key", hood) as harness:
        yield harness
