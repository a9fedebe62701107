"""Async SQLAlchemy for every service: PostgreSQL (asyncpg) in production, SQLite
(aiosqlite) for the embedded default; declarative base helpers; Alembic runner."""

from hds_common.db._engine import (
    create_engine,
    create_session_maker,
    normalise_database_url,
    ping_database,
)
from hds_common.db._migrations import (
    migrate_service,
    migrations_of,
    run_async_migrations,
    upgrade_to_head,
)
from hds_common.db._models import NAMING_CONVENTION, UtcDateTime, utcnow
from hds_common.db._session import SessionDep, request_session

__all__ = [
    "NAMING_CONVENTION",
    "SessionDep",
    "UtcDateTime",
    "create_engine",
    "create_session_maker",
    "migrate_service",
    "migrations_of",
    "normalise_database_url",
    "ping_database",
    "request_session",
    "run_async_migrations",
    "upgrade_to_head",
    "utcnow",
]
