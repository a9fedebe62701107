"""Crash leftovers: blobs without rows and uploads without heartbeat are cleaned up,
without touching uploads in flight."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

from sqlalchemy import text

from hds_common.db import utcnow
from hds_common.testing.dicom import make_dicom
from hds_storage.ingest.multipart import MultipartReader
from hds_storage.maintenance.collector import run_maintenance, sweep_orphans
from hds_storage.models import UploadBatch
from tests.storage.support import StorageEnv


async def test_orphan_blobs_go_unless_an_upload_of_their_package_is_in_flight(
    env: StorageEnv,
) -> None:
    institution = env.institution()
    package_id = await env.create_package(institution)
    kept = (await env.upload(institution, package_id, [make_dicom()])).json()["instances"][0]["id"]
    busy_package = await env.create_package(institution)
    orphan = f"objects/{package_id}/{uuid.uuid4()}"
    in_flight = f"objects/{busy_package}/{uuid.uuid4()}"
    await env.store.put_bytes(orphan, b"left by a crash")
    await env.store.put_bytes(in_flight, b"row not committed yet")
    state = env.app.state.runtime
    batch_id = str(uuid.uuid4())
    async with state.session_maker() as session, session.begin():
        session.add(
            UploadBatch(
                id=batch_id,
                account_id=institution.id,
                package_id=busy_package,
                reserved_bytes=1000,
                heartbeat_at=utcnow(),
                created_at=utcnow(),
            )
        )

    removed = await sweep_orphans(state.session_maker, state.store)

    assert removed == 1
    assert await env.blob_keys(f"objects/{package_id}/") == [f"objects/{package_id}/{kept}"]
    assert await env.blob_keys(f"objects/{busy_package}/") == [in_flight]
    usage = (await env.client.get("/storage/v1/usage", headers=env.auth(institution))).json()
    assert usage["reserved_bytes"] == 1000

    # The upload died: its heartbeat stops; the sweep frees the reservation and its blob.
    report = await run_maintenance(
        state.session_maker,
        state.store,
        upload_stale_seconds=60,
        package_idle_timeout_seconds=3600,
        now=utcnow() + dt.timedelta(seconds=61),
    )

    assert report.stale_batches == 1
    assert report.orphans_removed == 1
    assert await env.blob_keys(f"objects/{busy_package}/") == []
    usage = (await env.client.get("/storage/v1/usage", headers=env.auth(institution))).json()
    assert usage["reserved_bytes"] == 0
    download = await env.client.get(f"/storage/v1/objects/{kept}", headers=env.auth(institution))
    assert download.status_code == 200


async def test_an_upload_whose_batch_was_swept_is_refused(pg_env: StorageEnv) -> None:
    """A live upload that lost its batch (taken for dead) must not commit rows for blobs
    the sweep may already have removed."""
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    state = env.app.state.runtime
    sweeps = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sweeps
        data = make_dicom().data
        yield data[:1000]
        await run_maintenance(
            state.session_maker,
            state.store,
            upload_stale_seconds=1,
            package_idle_timeout_seconds=3600,
            now=utcnow() + dt.timedelta(seconds=5),
        )
        sweeps += 1
        yield data[1000:]

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers={**env.auth(institution), "Content-Type": "application/dicom"},
        content=body(),
    )

    assert sweeps == 1
    assert response.status_code == 503
    assert response.json()["type"] == "urn:hds:problem:upload-expired"
    assert await env.blob_keys(f"objects/{package_id}/") == []
    assert await env.usage(institution) == 0


async def test_items_left_without_holdings_are_collected(pg_env: StorageEnv) -> None:
    """A crash between removing a holding and removing the item leaves an unheld item."""
    env = pg_env
    institution = env.institution()
    package_id = await env.publish(institution, [make_dicom()])
    async with env.engine.begin() as connection:
        await connection.execute(
            text("DELETE FROM holdings WHERE package_id = :p"), {"p": package_id}
        )
    state = env.app.state.runtime

    report = await run_maintenance(
        state.session_maker,
        state.store,
        upload_stale_seconds=300,
        package_idle_timeout_seconds=3600,
    )

    assert report.unheld_items_removed >= 1
    assert await env.blob_keys(f"objects/{package_id}/") == []
    assert await env.count_rows(f"instances WHERE package_id = '{package_id}'") == 0
    assert await env.count_rows(f"studies WHERE package_id = '{package_id}'") == 0


async def test_multipart_reader_handles_any_chunking() -> None:
    boundary = b"----b0undary"
    parts = [(b"a.dcm", bytes(range(256)) * 40), (b"b.pdf", b"%PDF-1.4 tiny"), (b"c", b"")]
    body = (
        b"".join(
            b"--"
            + boundary
            + b'\r\nContent-Disposition: form-data; name="file"; filename="'
            + name
            + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
            + data
            + b"\r\n"
            for name, data in parts
        )
        + b"--"
        + boundary
        + b"--\r\n"
    )

    for size in (1, 7, 64, 4096, len(body)):

        async def stream(size: int = size) -> AsyncIterator[bytes]:
            for start in range(0, len(body), size):
                yield body[start : start + size]

        seen = []
        async for part in MultipartReader(stream(), boundary).parts():
            data = b"".join([chunk async for chunk in part.chunks])
            seen.append((part.filename, data))
        assert seen == [(name.decode(), data) for name, data in parts], size
