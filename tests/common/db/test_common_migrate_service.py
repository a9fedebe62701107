"""hds_common.db.migrate_service: one migrations helper for every service with a database,
each with its migrations in its package and its own version table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from hds_common.db import migrate_service, migrations_of
from hds_common.db._migrations import alembic_config


def _head(package: str) -> str:
    directory, version_table = migrations_of(package)
    script = ScriptDirectory.from_config(alembic_config(directory, "sqlite://", version_table))
    head = script.get_current_head()
    assert head is not None
    return head


def test_the_migrations_of_a_service_are_in_its_package() -> None:
    directory, version_table = migrations_of("hds_codes")
    assert directory.name == "migrations"
    assert directory.parent.name == "hds_codes"
    assert (directory / "env.py").is_file()
    assert version_table == "alembic_version_codes"


async def test_a_sqlite_database_is_migrated_to_head_in_the_services_version_table(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nested" / "codes.db"  # the folder is made on the way
    url = f"sqlite:///{path}"
    await migrate_service("hds_codes", url)
    await migrate_service("hds_codes", url)  # a second run changes nothing
    with sqlite3.connect(path) as connection:
        versions = connection.execute("SELECT version_num FROM alembic_version_codes").fetchall()
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert versions == [(_head("hds_codes"),)]
    assert "alembic_version" not in tables


async def test_two_services_share_one_database_each_with_its_version_table(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    await migrate_service("hds_codes", url)
    await migrate_service("hds_auth", url)
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        codes = connection.execute("SELECT version_num FROM alembic_version_codes").fetchall()
        auth = connection.execute("SELECT version_num FROM alembic_version_auth").fetchall()
    assert codes == [(_head("hds_codes"),)]
    assert auth == [(_head("hds_auth"),)]


async def test_an_unknown_package_is_refused() -> None:
    with pytest.raises(ValueError, match="no such package"):
        await migrate_service("hds_no_such_service", "sqlite://")
