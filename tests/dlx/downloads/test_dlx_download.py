"""download/{id} and downloadall: IHE PDI ZIPs, PDFs, ranges, 400, 503."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import httpx
import pydicom
import pytest
from fastapi import FastAPI
from pydicom.fileset import FileSet

from hds_dlx.runtime import Runtime
from tests.dlx.support import BIRTH_DATE, World, bearer, dlx_client, dlx_settings


def _unzip(content: bytes, target: Path) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None  # every member's CRC-32 checks out
    archive.extractall(target)
    return archive


def _slots(app: FastAPI) -> int:
    runtime: Runtime = app.state.runtime
    return runtime.slots.in_use


async def test_download_of_a_study_is_its_ihe_pdi_zip(
    client: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    response = await client.get(
        f"/dlx/v1/download/{world.ct.item_id}", headers=await bearer(client, world.code)
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="study-{world.ct.item_id}.zip"'
    )
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"].startswith('"')
    archive = _unzip(response.content, tmp_path)
    names = archive.namelist()
    assert names[:2] == ["DICOMDIR", "README.TXT"]
    dicom_names = [name for name in names if name.startswith("DICOM/")]
    assert dicom_names == [f"DICOM/ST000001/SE000001/IM00000{n}" for n in (1, 2, 3)]
    assert sorted(archive.read(name) for name in dicom_names) == sorted(world.ct.objects.values())
    file_set = FileSet(pydicom.dcmread(tmp_path / "DICOMDIR"))
    assert [i.StudyInstanceUID for i in file_set] == [world.ct.study.study_instance_uid] * 3
    assert world.storage.archive_requests[-1]["items"] == [world.ct.item_id]


async def test_download_of_a_report_is_the_pdf(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get(
        f"/dlx/v1/download/{world.report.item_id}", headers=await bearer(client, world.code)
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="report-{world.report.item_id}.pdf"'
    )
    assert response.content == world.report.data
    assert response.content.startswith(b"%PDF-")
    assert int(response.headers["content-length"]) == len(world.report.data)


async def test_unknown_id_or_another_codes_id_is_400_revealing_nothing(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await bearer(client, world.code)
    foreign = [world.other_package.studies[0].item_id, world.other_package.documents[0].item_id]
    answers = []
    for item_id in ["no-such-item", *foreign, "..%2F..%2Fetc%2Fpasswd", "a/b", ""]:
        response = await client.get(f"/dlx/v1/download/{item_id}", headers=headers)
        assert response.status_code == 400, item_id
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        body.pop("request_id", None)
        answers.append(body)
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["type"] == "urn:hds:problem:unknown-data-item"
    # The other package's items were never asked for.
    assert world.storage.archive_requests == []


async def test_downloadall_of_an_emptied_package_says_so(
    client: httpx.AsyncClient, world: World
) -> None:
    emptied = world.storage.add_package()
    code = world.codes.issue(package_id=emptied.id, birth_date=BIRTH_DATE, grant=emptied.grant)

    response = await client.get("/dlx/v1/downloadall", headers=await bearer(client, code))

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:hds:problem:package-empty"
    assert "no longer stored" in body["detail"]
    assert "ID" not in body["detail"]


async def test_download_requires_a_dlx_token(client: httpx.AsyncClient, world: World) -> None:
    for path in (f"/dlx/v1/download/{world.ct.item_id}", "/dlx/v1/downloadall"):
        response = await client.get(path)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_downloadall_is_one_zip_with_one_dicomdir(
    client: httpx.AsyncClient, world: World, tmp_path: Path
) -> None:
    response = await client.get("/dlx/v1/downloadall", headers=await bearer(client, world.code))

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="dlx-download.zip"'
    archive = _unzip(response.content, tmp_path)
    names = archive.namelist()
    assert names.count("DICOMDIR") == 1
    assert {name.split("/")[1] for name in names if name.startswith("DICOM/")} == {
        "ST000001",
        "ST000002",
    }
    assert archive.read("IHE_PDI/REPORT01.PDF") == world.report.data
    file_set = FileSet(pydicom.dcmread(tmp_path / "DICOMDIR"))
    assert len(file_set) == 5
    assert {i.StudyInstanceUID for i in file_set} == {
        world.ct.study.study_instance_uid,
        world.mr.study.study_instance_uid,
    }
    assert world.storage.archive_requests[-1]["items"] is None


@pytest.mark.parametrize("target", ["downloadall", "study"])
async def test_range_requests_pass_through_and_resume(
    client: httpx.AsyncClient, world: World, target: str
) -> None:
    path = (
        "/dlx/v1/downloadall" if target == "downloadall" else f"/dlx/v1/download/{world.ct.item_id}"
    )
    headers = await bearer(client, world.code)
    full = await client.get(path, headers=headers)
    total = len(full.content)
    etag = full.headers["etag"]
    cut = total * 40 // 100

    first = await client.get(path, headers={**headers, "Range": f"bytes=0-{cut - 1}"})
    assert first.status_code == 206
    assert first.headers["content-range"] == f"bytes 0-{cut - 1}/{total}"
    assert first.headers["content-length"] == str(cut)
    assert first.headers["etag"] == etag
    assert first.headers["content-type"] == "application/zip"

    rest = await client.get(path, headers={**headers, "Range": f"bytes={cut}-", "If-Range": etag})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {cut}-{total - 1}/{total}"
    assert first.content + rest.content == full.content
    assert world.storage.archive_requests[-1]["range"] == f"bytes={cut}-"
    assert world.storage.archive_requests[-1]["if_range"] == etag

    # A stale If-Range validator gets the whole, current representation.
    stale = await client.get(path, headers={**headers, "Range": "bytes=10-", "If-Range": '"old"'})
    assert stale.status_code == 200
    assert stale.content == full.content


async def test_range_beyond_the_end_is_416_and_frees_the_slot(world: World) -> None:
    async with dlx_client(world) as (client, app):
        headers = await bearer(client, world.code)
        response = await client.get(
            "/dlx/v1/downloadall", headers={**headers, "Range": "bytes=999999999-"}
        )
        assert response.status_code == 416
        assert response.headers["content-range"].startswith("bytes */")
        assert response.headers["content-type"] == "application/problem+json"
        assert _slots(app) == 0


async def test_downloads_are_503_come_back_later_while_the_package_is_incomplete(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await bearer(client, world.open_code)
    world.open_package.retry_after = 45
    for path in ("/dlx/v1/downloadall", "/dlx/v1/download/anything"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 503, path
        assert response.headers["content-type"] == "application/json"
        assert response.headers["retry-after"] == "45"
        assert response.json() == {"timeOutInSeconds": 45}

    # Storage without an estimate: the service's own busy interval.
    world.open_package.retry_after = 0
    response = await client.get("/dlx/v1/download/anything", headers=headers)
    assert response.status_code == 503
    assert response.json() == {"timeOutInSeconds": 10}
    assert response.headers["retry-after"] == "10"


async def test_downloads_beyond_the_concurrency_limit_are_503_until_a_slot_frees(
    world: World,
) -> None:
    settings = dlx_settings(max_concurrent_downloads=1, busy_retry_after_seconds=7)
    world.storage.gate = asyncio.Event()
    async with dlx_client(world, settings) as (client, app):
        headers = await bearer(client, world.code)
        first = asyncio.create_task(
            client.get(f"/dlx/v1/download/{world.ct.item_id}", headers=headers)
        )
        async with asyncio.timeout(10):
            await world.storage.stream_started.wait()
        assert _slots(app) == 1

        busy = await client.get("/dlx/v1/downloadall", headers=headers)
        assert busy.status_code == 503
        assert busy.headers["retry-after"] == "7"
        assert busy.headers["content-type"] == "application/json"
        assert busy.json() == {"timeOutInSeconds": 7}
        # Listing holds no slot.
        assert (await client.get("/dlx/v1/list", headers=headers)).status_code == 200

        world.storage.gate.set()
        done = await first
        assert done.status_code == 200
        assert zipfile.ZipFile(io.BytesIO(done.content)).testzip() is None
        assert _slots(app) == 0
        again = await client.get("/dlx/v1/downloadall", headers=headers)
        assert again.status_code == 200
        assert _slots(app) == 0
        metrics = await client.get("/metrics")
        assert "hds_dlx_downloads_in_flight 0.0" in metrics.text


async def test_repeated_downloads_ask_for_the_session_once_and_stop_when_it_ends(
    world: World,
) -> None:
    """The session check is cached (HDS_SESSION_CHECK_SECONDS): a client downloading item
    after item with one token costs one liveness call, not one per download; once the
    session has ended and the cached answer is older than that, the token is refused."""
    suite = dlx_settings().suite.model_copy(update={"session_check_seconds": 1.0})
    async with dlx_client(world, dlx_settings(suite=suite)) as (client, _):
        headers = await bearer(client, world.code)
        session_id = world.codes.issued(world.code).key_session_id
        for _ in range(5):
            response = await client.get(f"/dlx/v1/download/{world.ct.item_id}", headers=headers)
            assert response.status_code == 200
        assert world.storage.session_checks == [session_id]

        world.storage.ended_sessions.add(session_id)
        await asyncio.sleep(1.1)
        refused = await client.get(f"/dlx/v1/download/{world.ct.item_id}", headers=headers)
        assert refused.status_code == 401
        assert world.storage.session_checks == [session_id, session_id]
