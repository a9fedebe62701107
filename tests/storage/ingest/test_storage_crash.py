"""Crash safety and bounded memory, with the service as a real process (uvicorn via
``python -m hds_storage serve``) on PostgreSQL and S3."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import psutil
import pytest
from pydicom.uid import generate_uid

from hds_common.crypto import load_or_create_private_key, public_key_to_bytes
from hds_common.testing.dicom import make_dicom, make_dicom_header
from hds_common.testing.s3server import MotoS3Server
from hds_common.testing.tokens import TestIssuer
from tests.storage.support import KeySessionWriter, account_auth
from tests.storage.support_identity import IdentityStandIn, identity_server
from tests.storage.support_process import StorageProcess, process_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3]

BUCKET = "hds-storage-tests"
MIB = 1024 * 1024


class Client:
    """An institution talking to the storage process."""

    def __init__(
        self, base_url: str, issuer: TestIssuer, identity: IdentityStandIn, key: KeySessionWriter
    ) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=120)
        self.issuer = issuer
        self.account = identity.add("institution", quota_bytes=10 * 1024**3)
        self.storage_key = key

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = account_auth(self.issuer, self.storage_key, self.account)
        return headers


class Harness:
    def __init__(
        self,
        process: StorageProcess,
        issuer: TestIssuer,
        identity: IdentityStandIn,
        key: KeySessionWriter,
    ) -> None:
        self.process = process
        self.issuer = issuer
        self.identity = identity
        self.key = key
        self.clients: list[Client] = []

    def client(self) -> Client:
        """A client for a new institution account."""
        client = Client(self.process.base_url, self.issuer, self.identity, self.key)
        self.clients.append(client)
        return client


@pytest.fixture(scope="module")
async def storage_process(
    postgres_url: str, s3_server: MotoS3Server, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Harness, str]]:
    """One storage process for the module (starting one costs seconds): the memory test
    runs first, the crash test kills and restarts it."""
    tmp_path = tmp_path_factory.mktemp("storage-process")
    issuer = TestIssuer(issuer="hds-auth")
    identity = IdentityStandIn(issuer)
    key_file = tmp_path / "storage-grant.key"
    storage_key = public_key_to_bytes(load_or_create_private_key(key_file).public_key())
    prefix = uuid.uuid4().hex
    async with identity_server(identity) as auth_url:
        env = process_env(
            database_url=postgres_url,
            blob_url=s3_server.blobstore_url(BUCKET, prefix),
            auth_url=auth_url,
            key_file=key_file,
            HDS_STORAGE_UPLOAD_STALE_SECONDS="2",
            HDS_STORAGE_UPLOAD_HEARTBEAT_SECONDS="0.5",
            HDS_STORAGE_MAINTENANCE_INTERVAL_SECONDS="1",
        )
        process = StorageProcess(env, tmp_path / "storage.log")
        await process.start()
        harness = Harness(process, issuer, identity, KeySessionWriter(postgres_url, storage_key))
        try:
            yield harness, prefix
        finally:
            for client in harness.clients:
                await client.http.aclose()
            process.stop()


async def test_a_large_upload_and_download_run_in_bounded_memory(
    storage_process: tuple[Harness, str],
) -> None:
    harness, _ = storage_process
    process, client = harness.process, harness.client()
    rows = columns = 10240  # 200 MiB of 16-bit pixels
    pixel_bytes = rows * columns * 2
    header = make_dicom_header(rows, columns, patient_name="Big^Bertha", patient_id="BIG")
    block = os.urandom(MIB)
    created = await client.http.post("/storage/v1/packages", headers=client.headers())
    package_id = created.json()["id"]
    server = psutil.Process(process.pid)
    # Warm up (imports, pools, first S3 multipart) before taking the baseline.
    warm = await client.http.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers={**client.headers(), "Content-Type": "application/dicom"},
        content=make_dicom(patient_id="BIG", rows=1024, columns=4096).data,
    )
    assert warm.status_code == 201, warm.text
    baseline = server.memory_info().rss
    peak = baseline
    sha = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        sha.update(header)
        yield header
        for _ in range(pixel_bytes // MIB):
            sha.update(block)
            yield block

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, server.memory_info().rss)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        response = await client.http.post(
            f"/storage/v1/packages/{package_id}/instances",
            headers={**client.headers(), "Content-Type": "application/dicom"},
            content=body(),
        )
        assert response.status_code == 201, response.text
        (instance,) = response.json()["instances"]
        assert instance["size"] == len(header) + pixel_bytes
        assert instance["sha256"] == sha.hexdigest()
        upload_peak = peak
        download = hashlib.sha256()
        async with client.http.stream(
            "GET", f"/storage/v1/objects/{instance['id']}", headers=client.headers()
        ) as streamed:
            assert streamed.status_code == 200
            async for chunk in streamed.aiter_bytes(MIB):
                download.update(chunk)
        assert download.hexdigest() == sha.hexdigest()
    finally:
        sampler.cancel()
    growth_upload = (upload_peak - baseline) / MIB
    growth_total = (peak - baseline) / MIB
    # 200 MiB went through each way; the process grew by a bounded amount (the S3 store
    # buffers up to two 8 MiB parts), far below the payload.
    assert growth_upload < 100, f"upload grew RSS by {growth_upload:.0f} MiB"
    assert growth_total < 100, f"download grew RSS by {growth_total:.0f} MiB"


async def test_acknowledged_objects_survive_sigkill(
    storage_process: tuple[Harness, str], s3_server: MotoS3Server
) -> None:
    harness, prefix = storage_process
    process, client = harness.process, harness.client()
    created = await client.http.post("/storage/v1/packages", headers=client.headers())
    package_id = created.json()["id"]
    study = generate_uid()
    files = [
        make_dicom(
            study_uid=study, rows=256 if i % 3 else 768, columns=512 if i % 3 else 1024, seed=i
        )
        for i in range(48)
    ]
    acknowledged: dict[str, str] = {}  # object id -> sha256
    crashed = asyncio.Event()

    async def uploader(mine: list[bytes]) -> None:
        for data in mine:
            if crashed.is_set():
                return
            try:
                response = await client.http.post(
                    f"/storage/v1/packages/{package_id}/instances",
                    headers={**client.headers(), "Content-Type": "application/dicom"},
                    content=data,
                )
            except httpx.TransportError:
                return
            if response.status_code in (200, 201):
                (instance,) = response.json()["instances"]
                acknowledged[instance["id"]] = instance["sha256"]
                assert instance["sha256"] == hashlib.sha256(data).hexdigest()

    tasks = [asyncio.create_task(uploader([f.data for f in files[i::8]])) for i in range(8)]
    while len(acknowledged) < 12:
        await asyncio.sleep(0.005)
    process.kill()
    crashed.set()
    await asyncio.gather(*tasks)
    assert 12 <= len(acknowledged) < len(files)

    await process.start()

    headers = client.headers()
    for object_id, sha in acknowledged.items():
        response = await client.http.get(f"/storage/v1/objects/{object_id}", headers=headers)
        assert response.status_code == 200, response.text
        assert hashlib.sha256(response.content).hexdigest() == sha
    (listed_study,) = (await client.http.get("/storage/v1/studies", headers=headers)).json()
    detail = (
        await client.http.get(f"/storage/v1/studies/{listed_study['id']}", headers=headers)
    ).json()
    listed = {i["id"]: i for s in detail["series"] for i in s["instances"]}
    assert set(acknowledged) <= set(listed)
    for object_id, instance in listed.items():
        response = await client.http.get(f"/storage/v1/objects/{object_id}", headers=headers)
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == instance["sha256"]
    usage = (await client.http.get("/storage/v1/usage", headers=headers)).json()
    assert usage["used_bytes"] == sum(i["size"] for i in listed.values()) == listed_study["size"]

    # What the killed process left half-done (blobs without rows, reservations) is swept.
    store = s3_server.blobstore(BUCKET, prefix)
    async with store:
        deadline = time.monotonic() + 30
        while True:
            keys = {info.key async for info in store.list(f"objects/{package_id}/")}
            usage = (await client.http.get("/storage/v1/usage", headers=headers)).json()
            if (
                keys == {f"objects/{package_id}/{i}" for i in listed}
                and usage["reserved_bytes"] == 0
            ):
                break
            assert time.monotonic() < deadline, (sorted(keys), sorted(listed), usage)
            await asyncio.sleep(0.2)
