"""The operator cannot read health data at rest: a dump of every table and every blob
holds no patient name, no report text and no pixel data; tampering is detected."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any

import pytest
import structlog

from hds_common.crypto import SEGMENT_SIZE
from hds_common.testing.dicom import make_dicom, make_pdf, make_study
from hds_storage.downloads.responses import StoredObjectCorrupt
from tests.storage.support import StorageEnv, multipart_files


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat().encode()
    return str(value).encode()


def _contains_run(haystack: bytes, blocks: set[bytes], block: int) -> bool:
    """Whether ``haystack`` holds any of ``blocks`` (aligned ``block``-byte pieces of the
    secret): every 2*block-byte run of the secret contains one of them."""
    return any(haystack[i : i + block] in blocks for i in range(len(haystack) - block + 1))


async def test_no_marker_and_no_pixel_run_at_rest(env: StorageEnv) -> None:
    name_marker = f"Marker^{uuid.uuid4().hex}"
    report_marker = f"REPORT-{uuid.uuid4().hex}"
    id_marker = f"PID-{uuid.uuid4().hex[:20]}"
    description_marker = f"DESC-{uuid.uuid4().hex[:20]}"
    pixel_data = os.urandom(96 * 96 * 2)
    institution = env.institution()
    package_id = await env.create_package(institution)
    files = [
        make_dicom(
            patient_name=name_marker,
            patient_id=id_marker,
            study_description=description_marker,
            rows=96,
            columns=96,
            pixel_data=pixel_data,
        ),
        *make_study(1, patient_name=name_marker, patient_id=id_marker),
    ]
    assert (await env.upload(institution, package_id, files)).status_code == 201
    pdf = make_pdf(report_marker)
    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([(f"{name_marker}.pdf", pdf)], patient_id=id_marker, title=report_marker),
    )
    assert response.status_code == 201, response.text
    await env.complete(institution, package_id)
    # Delivered to a referrer too: its share, key slot and holdings are in the dump.
    referrer = env.account("referrer")
    delivered = await env.client.post(
        f"/storage/v1/packages/{package_id}/shares",
        json={"recipient": referrer.id},
        headers=env.auth(institution),
    )
    assert delivered.status_code == 201, delivered.text
    # The data is really there and readable with the key:
    for reader in (institution, referrer):
        listed = (await env.client.get("/storage/v1/studies", headers=env.auth(reader))).json()
        assert {s["patient"]["name"] for s in listed} == {name_marker}

    markers = [m.encode() for m in (name_marker, report_marker, id_marker, description_marker)]
    block = 32
    pixel_blocks = {pixel_data[i : i + block] for i in range(0, len(pixel_data) - block + 1, block)}

    dump = await env.dump_tables()
    assert {"packages", "patients", "studies", "instances", "documents", "key_slots"} <= set(dump)
    assert dump["shares"]
    for table, rows in dump.items():
        for row in rows:
            for value in row:
                data = _as_bytes(value)
                for marker in markers:
                    assert marker not in data, f"{marker!r} in table {table}"
                assert not _contains_run(data, pixel_blocks, block), f"pixel data in {table}"

    blobs = await env.blob_keys("")
    assert len(blobs) >= 3
    for key in blobs:
        data = await env.store.get_bytes(key)
        for marker in markers:
            assert marker not in data, f"{marker!r} in blob {key}"
        assert not _contains_run(data, pixel_blocks, block), f"pixel data in blob {key}"
        assert name_marker.encode() not in key.encode()


async def _flip_byte(env: StorageEnv, key: str, offset: int) -> None:
    data = bytearray(await env.store.get_bytes(key))
    data[offset] ^= 0x01
    await env.store.put_bytes(key, bytes(data))


@pytest.mark.parametrize("offset", [5, 200, -1])
async def test_a_flipped_byte_is_an_integrity_error(env: StorageEnv, offset: int) -> None:
    institution = env.institution()
    dicom = make_dicom()
    package_id = await env.create_package(institution)
    response = await env.upload(institution, package_id, [dicom])
    object_id = response.json()["instances"][0]["id"]
    (key,) = await env.blob_keys(f"objects/{package_id}/")
    await _flip_byte(env, key, offset)

    with structlog.testing.capture_logs() as logs:
        download = await env.client.get(
            f"/storage/v1/objects/{object_id}", headers=env.auth(institution)
        )

    assert download.status_code == 500
    assert download.headers["content-type"] == "application/problem+json"
    assert download.json()["type"] == "urn:hds:problem:integrity-error"
    assert dicom.data[:64] not in download.content
    assert any(
        entry["event"] == "integrity_error" and entry.get("object_id") == object_id
        for entry in logs
    ), logs
    ranged = await env.client.get(
        f"/storage/v1/objects/{object_id}", headers={**env.auth(institution), "Range": "bytes=0-9"}
    )
    assert ranged.status_code == 500
    await env.complete(institution, package_id)
    grant = {
        **env.service(),
        "X-HDS-Grant": env.package_grant(
            package_id, await env.package_key(institution, package_id)
        ),
    }
    with pytest.raises(StoredObjectCorrupt):
        # Members come after the DICOMDIR: the status is already sent, so the stream aborts.
        await env.client.get(f"/internal/v1/packages/{package_id}/archive", headers=grant)


async def test_a_missing_or_swapped_blob_is_an_integrity_error(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    first, second = make_study(2)
    stored = (await env.upload(institution, package_id, [first, second])).json()["instances"]
    key_a, key_b = (f"objects/{package_id}/{i['id']}" for i in stored)
    data_b = await env.store.get_bytes(key_b)
    await env.store.put_bytes(key_a, data_b)  # same key, other object: AAD binds the id

    swapped = await env.client.get(
        f"/storage/v1/objects/{stored[0]['id']}", headers=env.auth(institution)
    )
    await env.store.delete(key_b)
    missing = await env.client.get(
        f"/storage/v1/objects/{stored[1]['id']}", headers=env.auth(institution)
    )

    assert swapped.status_code == 500
    assert swapped.json()["type"] == "urn:hds:problem:integrity-error"
    assert missing.status_code == 500
    assert missing.json()["type"] == "urn:hds:problem:integrity-error"


async def test_tampered_metadata_is_an_integrity_error(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.publish(institution, make_study(1))
    from sqlalchemy import text

    async with env.engine.begin() as connection:
        meta = (
            await connection.execute(
                text("SELECT meta FROM studies WHERE package_id = :p"), {"p": package_id}
            )
        ).scalar_one()
        altered = bytes(meta[:-1]) + bytes([meta[-1] ^ 1])
        await connection.execute(
            text("UPDATE studies SET meta = :m WHERE package_id = :p"),
            {"m": altered, "p": package_id},
        )

    response = await env.client.get("/storage/v1/studies", headers=env.auth(institution))

    assert response.status_code == 500
    assert response.json()["type"] == "urn:hds:problem:integrity-error"


async def test_tampering_late_in_a_large_object_aborts_the_stream(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    dicom = make_dicom(rows=1024, columns=1280)  # 2.5 MiB: three segments
    package_id = await env.create_package(institution)
    object_id = (await env.upload(institution, package_id, [dicom])).json()["instances"][0]["id"]
    (key,) = await env.blob_keys(f"objects/{package_id}/")
    await _flip_byte(env, key, 16 + 2 * (SEGMENT_SIZE + 16) + 100)  # inside the last segment
    headers = env.auth(institution)

    with pytest.raises(StoredObjectCorrupt):
        await env.client.get(f"/storage/v1/objects/{object_id}", headers=headers)
    head = await env.client.get(
        f"/storage/v1/objects/{object_id}", headers={**headers, "Range": "bytes=0-999"}
    )
    assert head.status_code == 206
    assert head.content == dicom.data[:1000]
    tail = await env.client.get(
        f"/storage/v1/objects/{object_id}", headers={**headers, "Range": "bytes=-1000"}
    )
    assert tail.status_code == 500
    assert tail.json()["type"] == "urn:hds:problem:integrity-error"
