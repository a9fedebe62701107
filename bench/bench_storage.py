"""Benchmark of the encrypted storage service against a plain file copy.

Generates a CT study (default 200 instances of 512x512 16-bit), then measures in one run:

* plain copy: each file read and written to another directory with fsync (what a
  non-encrypting file store does at least), files/s and MB/s;
* ingest: the files uploaded to a real ``python -m hds_storage serve`` process over
  HTTP (validated, hashed, encrypted, stored, indexed), instances/s;
* decrypting read: every instance downloaded decrypted, MB/s; and the whole study as
  IHE PDI ZIP, MB/s;

and prints both storage figures as ratios to the plain copy. The embedded default
(SQLite + filesystem under a temporary directory) is used unless ``--postgres`` and/or
``--s3`` are given. ``--big-gb N`` adds one streamed upload of an N GB instance and
reports the server's peak RSS growth (bounded memory).

    .venv/bin/python bench/bench_storage.py [--instances 200] [--postgres] [--s3] [--big-gb 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import uvicorn
from fastapi import FastAPI
from pydicom.uid import generate_uid

from hds_client.api import SuiteClient
from hds_common.crypto import (
    b64e,
    generate_private_key,
    load_or_create_private_key,
    private_key_to_bytes,
    public_key_to_bytes,
    seal_session_key,
)
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token
from hds_common.testing.dicom import make_dicom, make_dicom_header
from hds_common.testing.ports import free_port
from hds_common.testing.tokens import TestIssuer

MIB = 1024 * 1024
SECRET = "bench-internal-secret"


# -- data ------------------------------------------------------------------------------------


def generate_study(directory: Path, count: int, size: int) -> list[Path]:
    """``count`` CT slices of ``size``x``size`` 16-bit pixels (smooth body + noise)."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(42)
    study_uid, series_uid = generate_uid(), generate_uid()
    y, x = np.mgrid[0:size, 0:size]
    body = ((x - size / 2) ** 2 + (y - size / 2) ** 2 < (size * 0.4) ** 2) * 1000
    paths = []
    for number in range(1, count + 1):
        pixels = (body + rng.normal(0, 30, (size, size))).clip(0, 4095).astype(np.uint16)
        dicom = make_dicom(
            patient_name="Bench^Mark",
            patient_id="BENCH-1",
            sex="O",
            study_description="CT Benchmark",
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=number,
            rows=size,
            columns=size,
            pixel_data=pixels.tobytes(),
        )
        path = directory / f"IM{number:05d}.dcm"
        path.write_bytes(dicom.data)
        paths.append(path)
    return paths


def plain_copy(paths: list[Path], target: Path) -> tuple[float, int]:
    """Copy every file with fsync; returns (seconds, bytes)."""
    target.mkdir(parents=True)
    total = 0
    started = time.perf_counter()
    for path in paths:
        data = path.read_bytes()
        fd = os.open(target / path.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        total += len(data)
    return time.perf_counter() - started, total


def plain_read(target: Path) -> tuple[float, int]:
    started = time.perf_counter()
    total = sum(len(p.read_bytes()) for p in sorted(target.iterdir()))
    return time.perf_counter() - started, total


# -- the service and its identity stand-in ----------------------------------------------------


class Identity:
    """Stand-in for the identity service: JWKS and the internal account endpoint."""

    def __init__(self) -> None:
        self.issuer = TestIssuer(issuer="hds-auth")
        self.private_key = private_key_to_bytes(generate_private_key())
        self.account_id = str(uuid.uuid4())
        public = public_key_to_bytes(generate_private_key().public_key())
        self.app = FastAPI()

        @self.app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            return self.issuer.jwks

        @self.app.get("/internal/v1/accounts/{account_id}")
        async def account(account_id: str) -> dict[str, Any]:
            return {
                "id": account_id,
                "role": "institution",
                "public_key": b64e(public),
                "quota_bytes": 1 << 50,
                "deletion_mode": "manual",
            }

    async def token(self, storage: httpx.AsyncClient, storage_key: bytes) -> str:
        """An account token as the identity service mints it at login: the private key
        handed to storage as a key session, the token carrying that session's grant."""
        expires_at = int(time.time()) + 3600
        started = await storage.post(
            "/internal/v1/key-sessions",
            headers={SERVICE_TOKEN_HEADER: mint_service_token(SECRET, "auth")},
            json={
                "kind": "user",
                "subject": self.account_id,
                "sealed_key": seal_session_key(
                    storage_key, self.private_key, kind="user", subject=self.account_id
                ),
                "expires_at": expires_at,
            },
        )
        started.raise_for_status()
        session = started.json()
        return self.issuer.mint(
            self.account_id,
            roles=["institution"],
            grant=session["grant"],
            ksid=session["session_id"],
            ttl=3600,
        )


@contextlib.asynccontextmanager
async def serve_identity(identity: Identity) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(identity.app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def storage_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hds_storage", "serve"],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_ready(base_url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"storage exited:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise SystemExit("storage did not become ready")


# -- measurements -------------------------------------------------------------------------------


async def ingest(
    api: SuiteClient,
    package_id: str,
    paths: list[Path],
    concurrency: int,
    batch: int,
) -> tuple[float, list[dict[str, Any]]]:
    """Upload ``paths`` in multipart requests of ``batch`` files (one file per request as
    ``application/dicom`` when ``batch`` is 1), ``concurrency`` requests at a time."""
    queue: asyncio.Queue[list[Path]] = asyncio.Queue()
    for start in range(0, len(paths), batch):
        queue.put_nowait(paths[start : start + batch])
    stored: list[dict[str, Any]] = []

    async def worker() -> None:
        while not queue.empty():
            group = queue.get_nowait()
            if len(group) == 1:
                data = group[0].read_bytes()
                answer = await api.upload_instance(package_id, data, length=len(data))
            else:
                files = [(p.name, p.read_bytes()) for p in group]
                answer = await api.upload_instances(package_id, files)
            stored.extend(answer["instances"])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, stored


async def read_back(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    stored: list[dict[str, Any]],
    concurrency: int,
) -> tuple[float, int]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for item in stored:
        queue.put_nowait(item)
    total = 0

    async def worker() -> None:
        nonlocal total
        while not queue.empty():
            item = queue.get_nowait()
            digest = hashlib.sha256()
            async with client.stream(
                "GET", f"/storage/v1/objects/{item['id']}", headers=headers
            ) as r:
                r.raise_for_status()
                async for chunk in r.aiter_bytes(MIB):
                    digest.update(chunk)
                    total += len(chunk)
            if digest.hexdigest() != item["sha256"]:
                raise SystemExit(f"object {item['id']} read back wrong")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, total


async def read_archive(
    client: httpx.AsyncClient, headers: dict[str, str], study_id: str
) -> tuple[float, int]:
    total = 0
    started = time.perf_counter()
    async with client.stream(
        "GET", f"/storage/v1/studies/{study_id}/archive", headers=headers
    ) as r:
        r.raise_for_status()
        async for chunk in r.aiter_bytes(MIB):
            total += len(chunk)
    return time.perf_counter() - started, total


async def big_upload(
    api: SuiteClient,
    package_id: str,
    gigabytes: float,
    pid: int,
) -> tuple[float, int, float]:
    """One streamed instance of ``gigabytes``; returns (seconds, bytes, peak RSS growth MiB)."""
    columns = 16384
    rows = max(1, min(65535, int(gigabytes * 1024**3) // (columns * 2)))
    pixel_bytes = rows * columns * 2
    header = make_dicom_header(rows, columns, patient_name="Bench^Mark", patient_id="BENCH-1")
    block = os.urandom(MIB)
    server = psutil.Process(pid)
    baseline = peak = server.memory_info().rss

    async def body() -> AsyncIterator[bytes]:
        yield header
        for _ in range(pixel_bytes // MIB):
            yield block
        yield block[: pixel_bytes % MIB]

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, server.memory_info().rss)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    try:
        # Chunked: the size is not announced, storage bounds it while it streams.
        await api.upload_instance(package_id, body(), length=None)
    finally:
        sampler.cancel()
    return time.perf_counter() - started, len(header) + pixel_bytes, (peak - baseline) / MIB


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in parallel")
    parser.add_argument("--batch", type=int, default=10, help="files per multipart request")
    parser.add_argument("--postgres", action="store_true", help="a temporary PostgreSQL database")
    parser.add_argument("--s3", action="store_true", help="moto's S3 server instead of files")
    parser.add_argument("--big-gb", type=float, default=0.0, help="add an N GB streamed upload")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hds-bench-"))
    stack = contextlib.AsyncExitStack()
    try:
        print(f"generating {args.instances} instances of {args.size}x{args.size} 16-bit CT ...")
        paths = generate_study(work / "source", args.instances, args.size)
        copy_seconds, copy_bytes = plain_copy(paths, work / "copy")
        read_seconds, read_bytes = plain_read(work / "copy")

        database_url = f"sqlite:///{work / 'storage.db'}"
        blob_url = str(work / "blobs")
        if args.postgres:
            from hds_common.testing.postgres import temporary_database

            database_url = await stack.enter_async_context(temporary_database("hds_bench"))
        if args.s3:
            from hds_common.testing.s3server import MotoS3Server

            s3 = stack.enter_context(MotoS3Server())
            store = s3.blobstore("hds-bench")
            async with store:
                await store.ensure_bucket()
            blob_url = s3.blobstore_url("hds-bench")

        identity = Identity()
        auth_url = await stack.enter_async_context(serve_identity(identity))
        key_file = work / "storage-grant.key"
        storage_key = public_key_to_bytes(load_or_create_private_key(key_file).public_key())
        port = free_port()
        env = {
            "HDS_STORAGE_PORT": str(port),
            "HDS_STORAGE_DATABASE_URL": database_url,
            "HDS_STORAGE_BLOB_URL": blob_url,
            "HDS_STORAGE_GRANT_PRIVATE_KEY_FILE": str(key_file),
            "HDS_AUTH_URL": auth_url,
            "HDS_INTERNAL_SECRET": SECRET,
            "HDS_LOG_LEVEL": "WARNING",
        }
        log = work / "storage.log"
        proc = stack.enter_context(storage_process(env, log))
        base_url = f"http://127.0.0.1:{port}"
        await wait_ready(base_url, proc, log)
        client = await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=600))
        token = await identity.token(client, storage_key)
        headers = {"Authorization": f"Bearer {token}"}
        api = SuiteClient(http=client, token=token)

        package_id = (await api.create_package()).id
        ingest_seconds, stored = await ingest(api, package_id, paths, args.concurrency, args.batch)
        decrypt_seconds, decrypt_bytes = await read_back(client, headers, stored, args.concurrency)
        study_id = stored[0]["study_id"]
        zip_seconds, zip_bytes = await read_archive(client, headers, study_id)

        mb = 1e6
        copy_files_per_s = len(paths) / copy_seconds
        copy_mb_s = copy_bytes / mb / copy_seconds
        read_mb_s = read_bytes / mb / read_seconds
        ingest_per_s = len(paths) / ingest_seconds
        decrypt_mb_s = decrypt_bytes / mb / decrypt_seconds
        zip_mb_s = zip_bytes / mb / zip_seconds
        database = "PostgreSQL" if args.postgres else "SQLite"
        backend = f"{database} + {'S3 (moto)' if args.s3 else 'filesystem'}"
        print(f"\nstudy: {len(paths)} instances, {copy_bytes / mb:.1f} MB; backend: {backend}")
        print(
            f"plain copy (read+write+fsync): {copy_files_per_s:8.1f} files/s {copy_mb_s:8.1f} MB/s"
        )
        print(f"plain read of the copies:          {read_mb_s:8.1f} MB/s")
        print(
            f"ingest ({args.batch}/request, {args.concurrency} parallel): "
            f"{ingest_per_s:8.1f} instances/s"
            f"  = {ingest_per_s / copy_files_per_s:.2f} x plain copy"
        )
        print(
            f"decrypting read (per object):      {decrypt_mb_s:8.1f} MB/s"
            f"  = {decrypt_mb_s / copy_mb_s:.2f} x plain copy, "
            f"{decrypt_mb_s / read_mb_s:.2f} x plain read"
        )
        print(
            f"decrypting read (IHE PDI ZIP):     {zip_mb_s:8.1f} MB/s"
            f"  = {zip_mb_s / copy_mb_s:.2f} x plain copy"
        )
        if args.big_gb > 0:
            seconds, size, growth = await big_upload(api, package_id, args.big_gb, proc.pid)
            print(
                f"streamed upload of {size / 1024**3:.2f} GiB: {size / mb / seconds:.1f} MB/s, "
                f"server peak RSS growth {growth:.0f} MiB"
            )
    finally:
        await stack.aclose()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
