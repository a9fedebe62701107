"""What one DLX download costs storage: ``download/{id}`` is one call (the item's content
with its kind in ``X-HDS-Item-Kind``, no list of the package first), ``downloadall`` is
one call (the archive, which checks completeness itself; no status call first) — on
success and on the answers storage refuses with."""

from __future__ import annotations

import httpx

from hds_dlx.runtime import Runtime
from tests.dlx.support import World, bearer, dlx_client


async def _warm(client: httpx.AsyncClient, code: str) -> dict[str, str]:
    """A token whose session liveness storage has answered already (the verifier caches
    it), so that what follows counts the download's own calls only."""
    headers = await bearer(client, code)
    await client.get("/dlx/v1/list", headers=headers)
    return headers


async def _storage_calls(
    client: httpx.AsyncClient, world: World, path: str, headers: dict[str, str]
) -> tuple[httpx.Response, list[str]]:
    before = len(world.storage.requests)
    response = await client.get(path, headers=headers)
    return response, world.storage.requests[before:]


def _content_path(package_id: str, item_id: str) -> str:
    return f"/internal/v1/packages/{package_id}/items/{item_id}/content"


async def test_download_of_a_study_is_one_storage_call(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await _warm(client, world.code)

    response, calls = await _storage_calls(
        client, world, f"/dlx/v1/download/{world.ct.item_id}", headers
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="study-{world.ct.item_id}.zip"'
    )
    assert calls == [_content_path(world.package.id, world.ct.item_id)]


async def test_download_of_a_report_is_one_storage_call(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await _warm(client, world.code)

    response, calls = await _storage_calls(
        client, world, f"/dlx/v1/download/{world.report.item_id}", headers
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="report-{world.report.item_id}.pdf"'
    )
    assert response.content == world.report.data
    assert calls == [_content_path(world.package.id, world.report.item_id)]


async def test_downloadall_is_one_storage_call(client: httpx.AsyncClient, world: World) -> None:
    headers = await _warm(client, world.code)

    response, calls = await _storage_calls(client, world, "/dlx/v1/downloadall", headers)

    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="dlx-download.zip"'
    assert calls == [f"/internal/v1/packages/{world.package.id}/archive"]


async def test_a_report_resumes_with_range_through_the_one_call(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await _warm(client, world.code)
    path = f"/dlx/v1/download/{world.report.item_id}"
    full = await client.get(path, headers=headers)
    cut = len(full.content) // 3

    rest, calls = await _storage_calls(
        client, world, path, {**headers, "Range": f"bytes={cut}-", "If-Range": full.headers["etag"]}
    )

    assert rest.status_code == 206
    assert rest.headers["content-type"] == "application/pdf"
    assert (
        rest.headers["content-range"] == f"bytes {cut}-{len(full.content) - 1}/{len(full.content)}"
    )
    assert full.content[:cut] + rest.content == full.content
    assert len(calls) == 1


async def test_an_unknown_item_is_400_after_one_storage_call(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await _warm(client, world.code)
    foreign = world.other_package.studies[0].item_id

    response, calls = await _storage_calls(client, world, f"/dlx/v1/download/{foreign}", headers)

    assert response.status_code == 400
    assert response.json()["type"] == "urn:hds:problem:unknown-data-item"
    assert calls == [_content_path(world.package.id, foreign)]


async def test_an_incomplete_package_is_503_after_one_storage_call(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await bearer(client, world.open_code)
    await client.get("/dlx/v1/downloadall", headers=headers)  # the session check, cached
    world.open_package.retry_after = 20

    for path in ("/dlx/v1/downloadall", f"/dlx/v1/download/{world.ct.item_id}"):
        response, calls = await _storage_calls(client, world, path, headers)
        assert response.status_code == 503, path
        assert response.json() == {"timeOutInSeconds": 20}
        assert response.headers["retry-after"] == "20"
        assert len(calls) == 1, (path, calls)


async def test_downloadall_of_a_deleted_package_still_ends_the_session(
    client: httpx.AsyncClient, world: World
) -> None:
    """Without the status call first, storage's 404 package-not-found of the archive says
    that the package is gone: the same 401 as list answers."""
    headers = await _warm(client, world.code)
    del world.storage.packages[world.package.id]

    for path in ("/dlx/v1/downloadall", f"/dlx/v1/download/{world.ct.item_id}"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["type"] == "urn:hds:problem:dlx-session-invalid"


async def test_content_without_its_kind_is_a_storage_failure_and_frees_the_slot(
    world: World,
) -> None:
    """Without ``X-HDS-Item-Kind`` DLX cannot name the file nor its media type: a 502,
    with the upstream closed and the download slot given back."""
    world.storage.omit_item_kind = True
    async with dlx_client(world) as (client, app):
        headers = await bearer(client, world.code)
        response = await client.get(f"/dlx/v1/download/{world.ct.item_id}", headers=headers)
        runtime: Runtime = app.state.runtime
        assert response.status_code == 502
        assert response.json()["type"] == "urn:hds:problem:storage-unavailable"
        assert runtime.slots.in_use == 0
