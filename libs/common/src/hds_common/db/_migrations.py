"""Alembic per service, driven programmatically.

Every service keeps its migrations inside its package (``hds_<service>/migrations``) and
its own version table (``alembic_version_<service>``), so services can share one database
or have one each. ``env.py`` of each service is two lines calling
:func:`run_async_migrations`.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import async_engine_from_config

from hds_common.db._engine import ensure_sqlite_directory, normalise_database_url

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (and Mako, which it pulls in) is imported only when migrating: a serving
# process that does not migrate on start never needs it, and it costs memory.


def alembic_config(migrations_dir: Path, database_url: str, version_table: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", normalise_database_url(database_url))
    config.attributes["version_table"] = version_table
    return config


def upgrade_to_head(migrations_dir: Path, database_url: str, version_table: str) -> None:
    """Migrate a database to the newest revision (blocking; run it in a thread or CLI)."""
    from alembic import command

    ensure_sqlite_directory(database_url)
    command.upgrade(alembic_config(migrations_dir, database_url, version_table), "head")


def run_async_migrations(metadata: MetaData) -> None:
    """Body of a service's ``env.py``."""
    from alembic import context

    config = context.config
    version_table = config.attributes.get("version_table") or "alembic_version"
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=metadata,
            version_table=version_table,
            literal_binds=True,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            # Batch mode lets ALTER TABLE migrations run on SQLite too.
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        connectable = async_engine_from_config(
            config.get_section(config.config_ini_section, {}) or {"sqlalchemy.url": url},
            prefix="sqlalchemy.",
            poolclass=pool.NullPool,
        )
        async with connectable.connect() as connection:
            await connection.run_sync(do_run)
        await connectable.dispose()

    connection = config.attributes.get("connection")
    if connection is not None:
        do_run(connection)
        return
    asyncio.run(run())


def migrations_of(package: str) -> tuple[Path, str]:
    """The migrations folder of service package ``hds_<name>`` and its version table."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ValueError(f"no such package: {package}")
    name = package.removeprefix("hds_")
    return Path(spec.origin).parent / "migrations", f"alembic_version_{name}"


async def migrate_service(package: str, database_url: str) -> None:
    """Migrate the database of service package ``package`` (``hds_auth`` …) to head."""
    directory, version_table = migrations_of(package)
    await asyncio.to_thread(upgrade_to_head, directory, database_url, version_table)
