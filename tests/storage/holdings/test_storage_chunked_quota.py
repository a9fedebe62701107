"""Quota reservation of uploads without Content-Length (chunked): concurrent uploads that
fit all succeed, and ``used + reserved <= quota`` still holds at the boundary."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from hds_common.testing.dicom import make_dicom
from tests.storage.support import StorageEnv
from tests.storage.support_identity import TestAccount

GIB = 1024 * 1024 * 1024


def _instances(count: int, *, patient_id: str) -> list[bytes]:
    """``count`` instances of one series, about 130 KB each."""
    return [
        make_dicom(
            patient_id=patient_id,
            study_uid="2.25.3" + "0" * 36,
            series_uid="2.25.4" + "0" * 36,
            sop_uid=f"2.25.{10**37 + i}",
            rows=256,
            columns=256,
            seed=i,
        ).data
        for i in range(count)
    ]


async def _pieces(data: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


async def _upload_chunked(
    env: StorageEnv, institution: TestAccount, package_id: str, data: bytes
) -> httpx.Response:
    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers={**env.auth(institution), "Content-Type": "application/dicom"},
        content=_pieces(data),
    )
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    return response


async def test_concurrent_chunked_uploads_into_an_empty_account_all_succeed(
    env: StorageEnv,
) -> None:
    files = _instances(20, patient_id="CH-1")
    assert all(120_000 < len(data) < 140_000 for data in files)
    institution = env.institution(quota_bytes=GIB)
    package_id = await env.create_package(institution)

    responses = await asyncio.gather(
        *(_upload_chunked(env, institution, package_id, data) for data in files)
    )

    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert await env.usage(institution) == sum(len(data) for data in files)
    assert await env.count_rows("upload_batches") == 0


async def test_chunked_uploads_at_the_boundary_never_exceed_the_quota(env: StorageEnv) -> None:
    files = _instances(20, patient_id="CH-2")
    size = len(files[0])
    quota = 10 * size + size // 2
    institution = env.institution(quota_bytes=quota)
    package_id = await env.create_package(institution)

    responses = await asyncio.gather(
        *(_upload_chunked(env, institution, package_id, data) for data in files)
    )

    stored = sum(1 for r in responses if r.status_code == 201)
    assert {r.status_code for r in responses} <= {201, 507}, [r.text for r in responses]
    assert stored >= 1
    used = await env.usage(institution)
    assert used == stored * size <= quota
    assert await env.listed_bytes(institution) == used
    assert len(await env.blob_keys(f"objects/{package_id}/")) == stored
    assert await env.count_rows("upload_batches") == 0
