"""Contract tests for hds_common.blobstore.

The same suite runs against the filesystem backend and the S3 backend; the S3 one
talks to a real S3 protocol server (moto's standalone server in a subprocess).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from hds_common.blobstore import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    BlobStore,
    BlobStoreError,
    FilesystemBlobStore,
    S3BlobStore,
    blobstore_from_url,
    open_blobstore,
)
from hds_common.testing.s3server import MotoS3Server

MIB = 1024 * 1024
S3_KEY_PREFIX = "tenant-a"


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    with MotoS3Server() as server:
        yield server


@pytest.fixture(scope="session")
async def s3_admin(s3_server: MotoS3Server) -> AsyncIterator[Any]:
    """A raw S3 client, independent of the code under test, for white-box checks."""
    async with aioboto3.Session().client("s3", **s3_server.client_kwargs()) as client:
        yield client


@dataclass
class Backend:
    name: str
    store: BlobStore
    # Temp files (fs) or incomplete multipart uploads (S3) left behind.
    leftovers: Callable[[], Awaitable[list[str]]]
    bucket: str | None = None


def _unique_bucket() -> str:
    return f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture(params=["fs", pytest.param("s3", marks=pytest.mark.s3)])
async def backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    s3_server: MotoS3Server,
    s3_admin: Any,
) -> AsyncIterator[Backend]:
    if request.param == "fs":
        fs_store = FilesystemBlobStore(tmp_path / "blobs")
        await fs_store.open()

        async def fs_leftovers() -> list[str]:
            return sorted(os.listdir(fs_store.tmp_dir))

        yield Backend("fs", fs_store, fs_leftovers)
        await fs_store.close()
        return

    bucket = _unique_bucket()
    s3_store = s3_server.blobstore(bucket, prefix=S3_KEY_PREFIX)
    await s3_store.open()
    await s3_store.ensure_bucket()

    async def s3_leftovers() -> list[str]:
        resp = await s3_admin.list_multipart_uploads(Bucket=bucket)
        return sorted(str(u["Key"]) for u in resp.get("Uploads", []))

    yield Backend("s3", s3_store, s3_leftovers, bucket)
    await s3_store.close()


@pytest.fixture
def store(backend: Backend) -> BlobStore:
    return backend.store


# -- helpers -------------------------------------------------------------------------


async def feed(data: bytes, sizes: tuple[int, ...] = (64 * 1024,)) -> AsyncIterator[bytes]:
    """Yield ``data`` in chunks cycling through ``sizes`` (uneven on purpose)."""
    pos, i = 0, 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        yield data[pos : pos + size]
        pos += size
        i += 1
        if i % 16 == 0:
            await asyncio.sleep(0)  # let other tasks interleave, like a network source


async def failing_source(data: bytes, fail_at: int) -> AsyncIterator[bytes]:
    async for chunk in feed(data[:fail_at], (256 * 1024,)):
        yield chunk
    raise RuntimeError("source broke")


async def read_chunks(
    store: BlobStore, key: str, start: int = 0, end: int | None = None
) -> list[bytes]:
    async with aclosing(store.get(key, start, end)) as chunks:
        return [chunk async for chunk in chunks]


async def list_all(store: BlobStore, prefix: str = "") -> list[BlobInfo]:
    async with aclosing(store.list(prefix)) as infos:
        return [info async for info in infos]


def rand(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# -- contract: round trips -------------------------------------------------------------


async def test_large_object_round_trip(backend: Backend, s3_admin: Any) -> None:
    store = backend.store
    data = rand(50 * MIB, seed=1)
    sizes = (1, 4093, 65_537, 1_000_003, 3 * MIB + 7, 17, 2 * MIB)

    assert await store.put("studies/big.bin", feed(data, sizes)) == len(data)

    assert await store.stat("studies/big.bin") == BlobInfo("studies/big.bin", len(data))
    digest = hashlib.sha256()
    chunk_sizes = []
    async with aclosing(store.get("studies/big.bin")) as chunks:
        async for chunk in chunks:
            digest.update(chunk)
            chunk_sizes.append(len(chunk))
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    # Streamed in CHUNK_SIZE pieces: neither buffered whole nor in tiny fragments.
    assert chunk_sizes[:-1] == [CHUNK_SIZE] * (len(chunk_sizes) - 1)
    assert sum(chunk_sizes) == len(data)

    if backend.name == "s3":
        assert isinstance(store, S3BlobStore)
        head = await s3_admin.head_object(
            Bucket=backend.bucket, Key=f"{S3_KEY_PREFIX}/studies/big.bin"
        )
        # Multipart ETags are "<md5-of-md5s>-<number of parts>".
        expected_parts = math.ceil(len(data) / store.part_size)
        assert head["ETag"].strip('"').endswith(f"-{expected_parts}")
    assert await backend.leftovers() == []


async def test_small_and_empty_objects(store: BlobStore) -> None:
    assert await store.put_bytes("small", b"hello") == 5
    assert await store.get_bytes("small") == b"hello"

    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # pragma: no cover - makes this an async generator

    assert await store.put("empty", nothing()) == 0
    assert await store.stat("empty") == BlobInfo("empty", 0)
    assert await read_chunks(store, "empty") == []
    assert await store.get_bytes("empty", 0, 10) == b""
    assert await store.get_bytes("empty", 5) == b""


async def test_range_reads(store: BlobStore) -> None:
    size = 3 * MIB + 123
    data = rand(size, seed=2)
    await store.put("r/obj", feed(data, (MIB + 1,)))

    # Contract: [start, end) with end exclusive; bounds past the end are clamped
    # exactly like Python slicing.
    cases: list[tuple[int, int | None]] = [
        (0, None),
        (1000, None),
        (1000, 2_500_000),
        (CHUNK_SIZE - 1, CHUNK_SIZE + 1),  # across a chunk boundary
        (size - 1, size),  # last byte
        (size - 1, None),
        (0, 1),  # first byte
        (7, 7),  # zero-length
        (size, None),  # start at the end
        (size, size),
        (size + 10, None),  # start past the end
        (size + 10, size + 20),
        (10, size + 1000),  # end past the end
    ]
    for start, end in cases:
        chunks = await read_chunks(store, "r/obj", start, end)
        assert b"".join(chunks) == data[start:end], (start, end)
        assert all(0 < len(c) <= CHUNK_SIZE for c in chunks), (start, end)

    for start, end in [(-1, None), (5, 4), (-3, -1)]:
        with pytest.raises(ValueError, match="range"):
            await read_chunks(store, "r/obj", start, end)


async def test_missing_key(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.stat("no/such/key")
    # get() is lazy but must fail on the first iteration.
    chunks = store.get("no/such/key")
    with pytest.raises(BlobNotFound):
        await anext(chunks)
    with pytest.raises(BlobNotFound):
        await read_chunks(store, "no/such/key", 3, 3)  # zero-length still checks
    with pytest.raises(BlobNotFound):
        await read_chunks(store, "no/such/key", 100)
    assert issubclass(BlobNotFound, BlobStoreError)


async def test_early_close_of_reads_releases_resources(store: BlobStore) -> None:
    await store.put("partial", feed(rand(5 * MIB, seed=3), (MIB,)))
    # More abandoned reads than the S3 connection pool holds (32): a leaked
    # connection per read would make this hang.
    async with asyncio.timeout(30):
        for _ in range(40):
            async with aclosing(store.get("partial")) as chunks:
                first = await anext(chunks)
                assert len(first) == CHUNK_SIZE
    assert await store.get_bytes("partial", 0, 4) == rand(5 * MIB, seed=3)[:4]


# -- contract: atomicity ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fail_at",
    [
        pytest.param(100_000, id="below-multipart-threshold"),
        pytest.param(20 * MIB + 5, id="during-multipart"),
    ],
)
async def test_failed_put_leaves_nothing(backend: Backend, fail_at: int) -> None:
    store = backend.store
    data = rand(fail_at, seed=4)
    with pytest.raises(RuntimeError, match="source broke"):
        await store.put("atomic/failed", failing_source(data, fail_at))

    with pytest.raises(BlobNotFound):
        await store.stat("atomic/failed")
    with pytest.raises(BlobNotFound):
        await read_chunks(store, "atomic/failed")
    assert await list_all(store) == []
    assert await backend.leftovers() == []


@pytest.mark.parametrize("cancellations", [1, 2])
async def test_cancelled_put_leaves_nothing(backend: Backend, cancellations: int) -> None:
    store = backend.store
    reached = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        block = rand(MIB, seed=5)
        for _ in range(12):  # beyond the multipart threshold: parts get uploaded
            yield block
        reached.set()
        await asyncio.Event().wait()  # a client that stops sending
        yield block  # pragma: no cover

    task = asyncio.create_task(store.put("atomic/cancelled", stalling()))
    await asyncio.wait_for(reached.wait(), 10)
    await asyncio.sleep(0.2)  # let the in-flight part upload get going
    task.cancel()
    if cancellations == 2:
        # An impatient caller (e.g. a server shutting down) cancels again while
        # the cleanup runs; the cleanup must still complete. White-box: on S3, aim
        # the second cancellation at the running abort.
        for _ in range(1000):
            if task.done() or getattr(store, "_background", None):
                break
            await asyncio.sleep(0)
        if backend.name == "s3":
            assert not task.done()
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # close() waits for cleanup that a repeated cancellation pushed to the background.
    await store.close()
    await store.open()

    with pytest.raises(BlobNotFound):
        await store.stat("atomic/cancelled")
    assert await list_all(store) == []
    assert await backend.leftovers() == []


async def test_overwrite_is_atomic(backend: Backend) -> None:
    store = backend.store
    old = rand(3 * MIB + 3, seed=6)
    new = rand(20 * MIB + 9, seed=7)
    await store.put("doc", feed(old, (MIB,)))

    # A reader that started before the overwrite keeps a consistent old version.
    early_reader = store.get("doc")
    first_old_chunk = await anext(early_reader)

    reached, gate = asyncio.Event(), asyncio.Event()

    async def gated() -> AsyncIterator[bytes]:
        async for chunk in feed(new[: 12 * MIB], (MIB,)):
            yield chunk
        reached.set()
        await gate.wait()
        async for chunk in feed(new[12 * MIB :], (MIB,)):
            yield chunk

    writer = asyncio.create_task(store.put("doc", gated()))
    await asyncio.wait_for(reached.wait(), 10)
    await asyncio.sleep(0.1)
    # Mid-write: the old content is fully visible, the new one not at all.
    assert await store.get_bytes("doc") == old
    assert await store.stat("doc") == BlobInfo("doc", len(old))
    assert await list_all(store) == [BlobInfo("doc", len(old))]

    gate.set()
    assert await writer == len(new)
    assert await store.get_bytes("doc") == new
    assert await store.stat("doc") == BlobInfo("doc", len(new))

    async with aclosing(early_reader):
        rest = [chunk async for chunk in early_reader]
    assert first_old_chunk + b"".join(rest) == old
    assert await backend.leftovers() == []


async def test_failed_overwrite_keeps_old_content(backend: Backend) -> None:
    store = backend.store
    old = rand(MIB, seed=8)
    await store.put_bytes("keep", old)
    with pytest.raises(RuntimeError, match="source broke"):
        await store.put("keep", failing_source(rand(10 * MIB, seed=9), 10 * MIB))
    assert await store.get_bytes("keep") == old
    assert await backend.leftovers() == []


async def test_concurrent_puts_to_20_keys(backend: Backend) -> None:
    store = backend.store
    rng = random.Random(10)
    payloads = {f"batch/{i:02d}.bin": rng.randbytes(rng.randrange(0, 2 * MIB)) for i in range(20)}
    # Two of them go through multipart uploads concurrently with the others.
    payloads["batch/05.bin"] = rng.randbytes(9 * MIB + 1)
    payloads["batch/15.bin"] = rng.randbytes(10 * MIB - 1)

    written = await asyncio.gather(
        *(store.put(key, feed(data, (100_000, 333_333))) for key, data in payloads.items())
    )
    assert written == [len(d) for d in payloads.values()]

    read_back = await asyncio.gather(*(store.get_bytes(key) for key in payloads))
    assert dict(zip(payloads, read_back, strict=True)) == payloads
    assert await list_all(store, "batch/") == [
        BlobInfo(key, len(payloads[key])) for key in sorted(payloads)
    ]
    assert await backend.leftovers() == []


# -- contract: delete, list, keys, ping --------------------------------------------------


async def test_delete_is_idempotent(store: BlobStore) -> None:
    await store.delete("never/existed")
    await store.put_bytes("gone/soon", b"x")
    await store.delete("gone/soon")
    with pytest.raises(BlobNotFound):
        await store.stat("gone/soon")
    await store.delete("gone/soon")
    assert await list_all(store) == []


async def test_list_by_prefix_sorted(store: BlobStore) -> None:
    # Inserted out of order; "-" < "/" < "0" in ASCII, which a naive directory walk
    # would get wrong ("x/a-b" sorts before everything under "x/a/").
    keys = ["x/b", "x/a/2", "y/z", "x/a/10", "x0", "x/ab/c", "x/a-b", "x/a/1", "x.y"]
    for i, key in enumerate(keys):
        await store.put_bytes(key, b"#" * (i + 1))
    size = {key: i + 1 for i, key in enumerate(keys)}

    async def listed(prefix: str) -> list[str]:
        infos = await list_all(store, prefix)
        assert all(info.size == size[info.key] for info in infos)
        return [info.key for info in infos]

    assert await listed("") == sorted(keys)
    assert await listed("x/") == ["x/a-b", "x/a/1", "x/a/10", "x/a/2", "x/ab/c", "x/b"]
    assert await listed("x/a") == ["x/a-b", "x/a/1", "x/a/10", "x/a/2", "x/ab/c"]
    assert await listed("x/a/") == ["x/a/1", "x/a/10", "x/a/2"]
    assert await listed("x/a/1") == ["x/a/1", "x/a/10"]
    assert await listed("x") == ["x.y", "x/a-b", "x/a/1", "x/a/10", "x/a/2", "x/ab/c", "x/b", "x0"]
    assert await listed("nothing/") == []
    assert await listed("x/b/") == []

    # Stopping early is fine.
    async with aclosing(store.list("x/")) as infos:
        async for info in infos:
            assert info.key == "x/a-b"
            break


BAD_KEYS = [
    "",
    "/etc/passwd",
    "a//b",
    "a/",
    "..",
    "../escape",
    "a/../../b",
    ".",
    "a/./b",
    "with space",
    "back\\slash",
    "umlaut-ä",
    "semi;colon",
    ".tmp/x",  # reserved for the filesystem backend's temp files
    "x" * 256,
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_invalid_keys_rejected(store: BlobStore, key: str) -> None:
    consumed = False

    async def source() -> AsyncIterator[bytes]:
        nonlocal consumed
        consumed = True
        yield b"data"

    with pytest.raises(ValueError, match="invalid blob key"):
        await store.put(key, source())
    assert not consumed
    with pytest.raises(ValueError, match="invalid blob key"):
        await read_chunks(store, key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.stat(key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.delete(key)


@pytest.mark.parametrize("prefix", ["/abs", "../", "a//", "a/../", "..", "bad prefix"])
async def test_invalid_list_prefix_rejected(store: BlobStore, prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid blob prefix"):
        await list_all(store, prefix)


async def test_valid_unusual_keys(store: BlobStore) -> None:
    for key in ["A-Z_a.z/0-9", "..hidden/x", "a/.dot", "-dash", "v1.2.3/file.tar.gz"]:
        await store.put_bytes(key, key.encode())
        assert await store.get_bytes(key) == key.encode()


async def test_ping(store: BlobStore) -> None:
    await store.ping()


# -- backend-specific ---------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_s3_ping_fails_on_closed_port() -> None:
    store = S3BlobStore(
        "any-bucket",
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        access_key_id="testing",
        secret_access_key="testing",
        max_attempts=1,
        connect_timeout=1.0,
    )
    async with store:
        started = time.monotonic()
        with pytest.raises(BlobStoreError, match="HeadBucket"):
            await store.ping()
        assert time.monotonic() - started < 10


async def test_s3_ping_fails_for_missing_bucket(s3_server: MotoS3Server) -> None:
    async with s3_server.blobstore(_unique_bucket()) as store:
        with pytest.raises(BlobStoreError):
            await store.ping()


async def test_s3_requires_open(s3_server: MotoS3Server) -> None:
    store = s3_server.blobstore(_unique_bucket())
    with pytest.raises(BlobStoreError, match="not open"):
        await store.stat("k")
    await store.open()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(BlobStoreError, match="not open"):
        await store.ping()


async def test_s3_prefixes_isolate_stores(s3_server: MotoS3Server, s3_admin: Any) -> None:
    bucket = _unique_bucket()
    async with (
        s3_server.blobstore(bucket, prefix="one") as one,
        s3_server.blobstore(bucket, prefix="/two/nested/") as two,
    ):
        await one.ensure_bucket()
        await one.put_bytes("k", b"1")
        await two.put_bytes("k", b"2")
        assert await one.get_bytes("k") == b"1"
        assert await two.get_bytes("k") == b"2"
        assert await list_all(one) == [BlobInfo("k", 1)]
        resp = await s3_admin.list_objects_v2(Bucket=bucket)
        assert sorted(o["Key"] for o in resp["Contents"]) == ["one/k", "two/nested/k"]


async def test_s3_list_paginates(s3_server: MotoS3Server, s3_admin: Any) -> None:
    bucket = _unique_bucket()
    async with s3_server.blobstore(bucket) as store:
        await store.ensure_bucket()
        keys = [f"p/{i:05d}" for i in range(1100)]  # > 1000 keys per ListObjectsV2 page
        sem = asyncio.Semaphore(32)

        async def put_one(key: str) -> None:
            async with sem:
                await s3_admin.put_object(Bucket=bucket, Key=key, Body=b"")

        await asyncio.gather(*(put_one(k) for k in keys))
        assert [info.key for info in await list_all(store, "p/")] == keys


def test_s3_constructor_validation() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3BlobStore("b", part_size=MIB)
    with pytest.raises(ValueError, match="both"):
        S3BlobStore("b", access_key_id="x")
    with pytest.raises(ValueError, match="invalid blob key"):
        S3BlobStore("b", prefix="../up")


async def test_fs_ping_fails_without_root(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "missing")
    with pytest.raises(BlobStoreError):
        await store.ping()
    await store.open()
    await store.ping()


async def test_fs_open_sweeps_only_stale_temp_files(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path, stale_tmp_age=600)
    store.tmp_dir.mkdir()
    stale = store.tmp_dir / "put-crashed.part"
    fresh = store.tmp_dir / "put-inflight.part"
    stale.write_bytes(b"old")
    fresh.write_bytes(b"new")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    await store.open()
    assert not stale.exists()
    assert fresh.exists()  # may belong to another worker's running upload


async def test_fs_layout_and_key_conflicts(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    async with store:
        await store.put_bytes("a/b/c", b"abc")
        assert (tmp_path / "a" / "b" / "c").read_bytes() == b"abc"
        # A key cannot be both a blob and a "directory" of other keys on disk.
        with pytest.raises(BlobStoreError):
            await store.put_bytes("a/b/c/d", b"x")
        with pytest.raises(BlobStoreError):
            await store.put_bytes("a/b", b"x")
        with pytest.raises(BlobNotFound):
            await store.stat("a/b")
        await store.delete("a/b")  # a directory is not a blob: no-op
        # Foreign files that no valid key could name are not listed.
        (tmp_path / "a" / "bad name").write_bytes(b"")
        assert await list_all(store) == [BlobInfo("a/b/c", 3)]
        assert os.listdir(store.tmp_dir) == []


# -- factory ---------------------------------------------------------------------------------


def test_factory_filesystem_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = blobstore_from_url(f"file://{tmp_path}/blobs")
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "blobs"

    store = blobstore_from_url(f"file://localhost{tmp_path}")
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path

    store = blobstore_from_url(str(tmp_path / "plain"))
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "plain"

    monkeypatch.chdir(tmp_path)
    store = blobstore_from_url("relative/dir")
    assert isinstance(store, FilesystemBlobStore)
    assert store.root == tmp_path / "relative" / "dir"


def test_factory_s3_url() -> None:
    store = blobstore_from_url(
        "s3://hds-blobs/prod/results?endpoint=http://127.0.0.1:9000&region=eu-central-1"
        "&access_key_id=AK&secret_access_key=S%2FK&part_size_mib=16&multipart_threshold_mib=32"
    )
    assert isinstance(store, S3BlobStore)
    assert store.bucket == "hds-blobs"
    assert store.prefix == "prod/results/"
    assert store.endpoint_url == "http://127.0.0.1:9000"
    assert store.part_size == 16 * MIB
    assert store.multipart_threshold == 32 * MIB

    bare = blobstore_from_url("s3://hds-blobs")
    assert isinstance(bare, S3BlobStore)
    assert bare.prefix == ""
    assert bare.endpoint_url is None


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ftp://host/x",
        "file://otherhost/x",
        "file:///x?opt=1",
        "s3://Bad_Bucket/x",
        "s3://bucket/x?endpont=http://typo",
        "s3://bucket/x?part_size_mib=abc",
        "s3://bucket/x?part_size_mib=1",
        "s3://bucket/x?region=a&region=b",
        "s3://user:secret@bucket/x",
        "s3://bucket/../x",
    ],
)
def test_factory_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - message varies per case
        blobstore_from_url(url)


async def test_open_blobstore_from_s3_url(s3_server: MotoS3Server) -> None:
    bucket = _unique_bucket()
    store = await open_blobstore(s3_server.blobstore_url(bucket, "via/url"))
    try:
        assert isinstance(store, S3BlobStore)
        await store.ensure_bucket()
        await store.ping()
        await store.put_bytes("k", b"value")
        assert await store.get_bytes("k") == b"value"
        assert store.prefix == "via/url/"
    finally:
        await store.close()


def test_moto_server_lifecycle() -> None:
    server = MotoS3Server()
    server.start()
    try:
        assert server.running
        port = server.port
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        server.stop()
    assert not server.running
    server.stop()  # idempotent
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass
