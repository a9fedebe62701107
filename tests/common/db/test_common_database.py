"""The database layer on real PostgreSQL and on SQLite: URLs, engines, and every
service's Alembic migrations matching its models."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from hds_common.db import (
    create_engine,
    migrate_service,
    migrations_of,
    normalise_database_url,
    ping_database,
)
from hds_common.testing.postgres import temporary_database

SERVICES_WITH_TABLES = ("auth", "codes", "storage")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgresql+psycopg2://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("sqlite+aiosqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
    ],
)
def test_database_urls_pick_the_async_driver(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


@pytest.fixture(params=["postgres", "sqlite"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "postgres":
        async with temporary_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'test.db'}"


async def test_engine_connects_and_pings(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await ping_database(engine)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 40 + 2"))).scalar_one() == 42
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", SERVICES_WITH_TABLES)
async def test_migrations_reach_head_and_match_the_models(database_url: str, service: str) -> None:
    package = f"hds_{service}"
    models = importlib.import_module(f"{package}.models")
    _, version_table = migrations_of(package)
    await migrate_service(package, database_url)
    await migrate_service(package, database_url)  # idempotent: a second run changes nothing

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:

            def check(sync_connection: Connection) -> tuple[set[str], list[object]]:
                tables = set(inspect(sync_connection).get_table_names())
                context = MigrationContext.configure(
                    sync_connection,
                    opts={"compare_type": True, "version_table": version_table},
                )
                return tables, compare_metadata(context, models.Base.metadata)

            tables, differences = await connection.run_sync(check)
    finally:
        await engine.dispose()
    assert version_table in tables
    assert set(models.Base.metadata.tables) <= tables
    assert differences == [], f"models and migrations of {service} differ: {differences}"
