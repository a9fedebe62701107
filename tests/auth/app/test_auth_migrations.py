"""The hand-written migration creates exactly the tables the models describe, on both
databases, and can be undone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from hds_auth.models import Base
from hds_common.db import create_engine, migrate_service, migrations_of
from hds_common.db._migrations import alembic_config

MIGRATIONS_DIR, VERSION_TABLE = migrations_of("hds_auth")


async def migrate(url: str) -> None:
    await migrate_service("hds_auth", url)


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [
        diff
        for diff in compare_metadata(context, Base.metadata)
        if not (diff[0] == "remove_table" and diff[1].name == VERSION_TABLE)
    ]


@pytest.mark.both_databases
async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    await migrate(url)
    await asyncio.to_thread(
        command.downgrade, alembic_config(MIGRATIONS_DIR, url, VERSION_TABLE), "base"
    )
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {VERSION_TABLE}
        await migrate(url)
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert {"accounts", "activation_tokens", "refresh_tokens", "throttle_counters"} <= set(
            tables
        )
    finally:
        await engine.dispose()
