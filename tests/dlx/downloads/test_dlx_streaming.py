"""The bulk path over real sockets: storage stand-in and DLX each served by uvicorn, DLX
streaming with aiohttp (the default) and with httpx."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from hds_common.testing.asgi import serving
from hds_dlx.main import create_app
from hds_dlx.runtime import Runtime
from tests.dlx.support import World, dlx_settings

MiB = 1024 * 1024


@asynccontextmanager
async def served_dlx(
    world: World, stream_client: str, **overrides: object
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """Storage and DLX on loopback ports; tokens verified with the issuer's keys directly."""
    async with serving(world.storage.app) as storage_url:
        settings = dlx_settings(stream_client=stream_client, **overrides)
        settings.suite.storage_url = storage_url
        app = create_app(settings, key_source=world.issuer.keys())
        async with (
            serving(app) as dlx_url,
            httpx.AsyncClient(
                base_url=dlx_url,
                headers={"Authorization": f"Bearer {world.dlx_token(world.package)}"},
                timeout=30,
            ) as client,
        ):
            yield client, app


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


async def _read_body(client: httpx.AsyncClient, path: str, lengths: list[int]) -> None:
    """GET ``path``: its Content-Length, then the length of every piece as it arrives."""
    async with client.stream("GET", path) as response:
        assert response.status_code == 200
        lengths.append(int(response.headers["content-length"]))
        async for chunk in response.aiter_raw():
            lengths.append(len(chunk))


@pytest.fixture
def big_study(world: World) -> str:
    study = world.package.add_study(
        patient=world.ct.patient,
        description="CT Abdomen",
        date="20240501",
        modality="CT",
        instances=4,
        pixels=2 * MiB,
    )
    return str(study.item_id)


@pytest.mark.parametrize("stream_client", ["aiohttp", "httpx"])
async def test_download_streams_through_with_ranges(
    world: World, big_study: str, stream_client: str
) -> None:
    async with served_dlx(world, stream_client) as (client, _):
        path = f"/dlx/v1/download/{big_study}"
        full = await client.get(path)
        assert full.status_code == 200
        assert full.headers["content-type"] == "application/zip"
        total = int(full.headers["content-length"])
        assert total == len(full.content) > 8 * MiB
        archive = zipfile.ZipFile(io.BytesIO(full.content))
        assert archive.testzip() is None
        assert len([n for n in archive.namelist() if n.startswith("DICOM/")]) == 4

        cut = total * 40 // 100
        first = await client.get(path, headers={"Range": f"bytes=0-{cut - 1}"})
        rest = await client.get(
            path, headers={"Range": f"bytes={cut}-", "If-Range": full.headers["etag"]}
        )
        assert (first.status_code, rest.status_code) == (206, 206)
        assert rest.headers["content-range"] == f"bytes {cut}-{total - 1}/{total}"
        joined = first.content + rest.content
        assert hashlib.sha256(joined).digest() == hashlib.sha256(full.content).digest()

        document = await client.get(f"/dlx/v1/download/{world.report.item_id}")
        assert document.status_code == 200
        assert document.headers["content-type"] == "application/pdf"
        assert document.content == world.report.data


@pytest.mark.parametrize("stream_client", ["aiohttp", "httpx"])
async def test_client_going_away_mid_download_frees_the_slot_and_the_upstream(
    world: World, big_study: str, stream_client: str
) -> None:
    storage = world.storage
    storage.gate = asyncio.Event()  # storage pauses after the first MiB of an object
    storage.gate_after = MiB
    async with served_dlx(world, stream_client, max_concurrent_downloads=1) as (client, app):
        runtime: Runtime = app.state.runtime
        async with client.stream("GET", f"/dlx/v1/download/{big_study}") as response:
            assert response.status_code == 200
            # Keep a reference: an abandoned iterator is closed by the garbage collector,
            # which would end the download before this test means to.
            chunks = response.aiter_raw()
            received = 0
            while received < 64 * 1024:
                received += len(await anext(chunks))
            assert runtime.slots.in_use == 1
            busy = await client.get(f"/dlx/v1/download/{big_study}")
            assert busy.status_code == 503
            assert busy.json() == {"timeOutInSeconds": 10}
        # Leaving the block closed the connection half-way through the body.
        await _until(lambda: runtime.slots.in_use == 0)
        await _until(lambda: storage.streams_aborted >= 1)
        assert storage.streams_completed == 0

        storage.gate.set()
        again = await client.get(f"/dlx/v1/download/{big_study}")
        assert again.status_code == 200
        assert zipfile.ZipFile(io.BytesIO(again.content)).testzip() is None
        assert runtime.slots.in_use == 0


@pytest.mark.parametrize("stream_client", ["aiohttp", "httpx"])
async def test_upstream_breaking_off_mid_download_cuts_the_download_short(
    world: World, big_study: str, stream_client: str
) -> None:
    """Storage failing half-way through a long archive: the client gets fewer bytes than
    announced and a closed connection (never a hang or a complete-looking file), the slot
    is freed, and the next download is whole."""
    storage = world.storage
    storage.fail_after = MiB  # within the first object (2 MiB each)
    async with served_dlx(world, stream_client) as (client, app):
        runtime: Runtime = app.state.runtime
        lengths: list[int] = []  # announced, then each piece received
        with pytest.raises(httpx.RemoteProtocolError):
            await _read_body(client, f"/dlx/v1/download/{big_study}", lengths)
        announced, received = lengths[0], sum(lengths[1:])
        assert 0 < received < announced
        await _until(lambda: runtime.slots.in_use == 0)

        storage.fail_after = None
        again = await client.get(f"/dlx/v1/download/{big_study}")
        assert again.status_code == 200
        assert zipfile.ZipFile(io.BytesIO(again.content)).testzip() is None
