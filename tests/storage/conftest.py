"""Fixtures of the storage service tests: PostgreSQL + S3 (moto's real S3 protocol
server) for every path, SQLite + filesystem for the embedded default where cheap."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hds_common.testing.postgres import temporary_database
from hds_common.testing.s3server import MotoS3Server
from tests.storage.support import Backend, StorageEnv, storage_env

BUCKET = "hds-storage-tests"

PG_S3 = pytest.param("postgres-s3", marks=[pytest.mark.postgres, pytest.mark.s3], id="pg-s3")
SQLITE_FS = pytest.param("sqlite-fs", id="sqlite-fs")


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    async with temporary_database("hds_storage_t") as url:
        yield url


@pytest.fixture(scope="session")
async def s3_server() -> AsyncIterator[MotoS3Server]:
    with MotoS3Server() as server:
        store = server.blobstore(BUCKET)
        async with store:
            await store.ensure_bucket()
        yield server


def make_backend(request: pytest.FixtureRequest, name: str, tmp_path: Path) -> Backend:
    if name == "postgres-s3":
        database_url: str = request.getfixturevalue("postgres_url")
        s3: MotoS3Server = request.getfixturevalue("s3_server")
        # A key prefix per test keeps blob listings of tests apart in the shared bucket.
        return Backend(name, database_url, s3.blobstore_url(BUCKET, uuid.uuid4().hex))
    return Backend(name, f"sqlite:///{tmp_path / 'storage.db'}", str(tmp_path / "blobs"))


@pytest.fixture(params=[PG_S3, SQLITE_FS])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Both backends: PostgreSQL + S3 and the embedded SQLite + filesystem."""
    return make_backend(request, str(request.param), tmp_path)


@pytest.fixture(params=[PG_S3])
def pg_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """PostgreSQL + S3 only."""
    return make_backend(request, str(request.param), tmp_path)


@pytest.fixture
async def env(backend: Backend, tmp_path: Path) -> AsyncIterator[StorageEnv]:
    async with storage_env(backend, tmp_path) as environment:
        yield environment


@pytest.fixture
async def pg_env(pg_backend: Backend, tmp_path: Path) -> AsyncIterator[StorageEnv]:
    async with storage_env(pg_backend, tmp_path) as environment:
        yield environment
