"""Fixtures of the access code service's tests (see codes_harness for the stand-ins)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from codes_harness import Harness, Neighbourhood, codes_harness
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hds_codes.db import migrate
from hds_common.testing.postgres import temporary_database
from hds_common.testing.tokens import TestIssuer


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
        await migrate(url)
        yield url


@pytest.fixture
async def codes(postgres_url: str, tmp_path: Path, hood: Neighbourhood) -> AsyncIterator[Harness]:
    """The codes app on PostgreSQL with stand-in neighbours. Tests share the database but
    never each other's institutions, codes or client addresses."""
    async with codes_harness(postgres_url, tmp_path / "codes-lookup.key", hood) as harness:
        yield harness
