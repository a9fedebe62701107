"""Streaming benchmark for hds_common.blobstore: memory stays flat, throughput is sane.

    python bench/bench_blobstore.py [--size-mb 500] [--backend fs --backend s3]

For each backend a SIZE MiB object is streamed in (from a generator of 1 MiB
chunks) and streamed out (hashed with SHA-256 and compared with the source). A
background thread samples this process's RSS every 10 ms; the table shows the peak
above the baseline taken after start-up, and the throughput relative to a plain
``shutil.copyfile`` of a same-size file measured in the same run.

The S3 backend talks to moto's standalone server (a subprocess started here); its
memory is not part of this process's RSS, and its speed (pure Python) bounds the S3
figures - treat them as a check of the client side, not of S3.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

from hds_common.blobstore import BlobStore, FilesystemBlobStore, S3BlobStore
from hds_common.testing.s3server import MotoS3Server

MIB = 1024 * 1024
TARGET_PEAK_MIB = 100
SAMPLE_INTERVAL = 0.010
_T = TypeVar("_T")


class RssSampler:
    """Tracks the peak RSS of this process from a daemon thread."""

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._peak = 0
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def current(self) -> int:
        return int(self._proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.current()
            with self._lock:
                self._peak = max(self._peak, rss)
            self._stop.wait(self._interval)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def reset_peak(self) -> None:
        with self._lock:
            self._peak = self.current()

    def peak(self) -> int:
        with self._lock:
            return max(self._peak, self.current())


def make_block() -> bytearray:
    return bytearray(os.urandom(MIB))


def chunks(block: bytearray, count: int) -> Iterator[bytes]:
    """Distinct 1 MiB chunks for the cost of one urandom call: a counter in the head.

    Each chunk is a fresh ``bytes`` because a consumer may keep a reference to it
    (the S3 backend buffers parts).
    """
    for i in range(count):
        block[:8] = i.to_bytes(8, "little")
        yield bytes(block)


async def achunks(block: bytearray, count: int) -> AsyncIterator[bytes]:
    for i, chunk in enumerate(chunks(block, count)):
        yield chunk
        if i % 8 == 0:
            await asyncio.sleep(0)  # behave like a network source that yields control


@dataclass
class Row:
    backend: str
    direction: str
    seconds: float
    peak_mib: float | None
    ok: bool

    def mib_per_s(self, size_mib: int) -> float:
        return size_mib / self.seconds


async def measure(
    sampler: RssSampler, baseline: int, func: Callable[[], Awaitable[_T]]
) -> tuple[_T, float, float]:
    gc.collect()
    sampler.reset_peak()
    started = time.perf_counter()
    result = await func()
    elapsed = time.perf_counter() - started
    return result, elapsed, (sampler.peak() - baseline) / MIB


class CompleteTimer:
    """Times CompleteMultipartUpload calls on an S3BlobStore's client.

    moto assembles the object in Python when the upload is completed, which takes
    seconds for hundreds of MB; showing that share separates server cost from the
    client-side streaming being measured. Bench-only peek at the private client.
    """

    def __init__(self, store: S3BlobStore) -> None:
        self.seconds = 0.0
        self._started = 0.0
        events = store._client.meta.events
        events.register("before-call.s3.CompleteMultipartUpload", self._before)
        events.register("after-call.s3.CompleteMultipartUpload", self._after)

    def _before(self, **_: object) -> None:
        self._started = time.perf_counter()

    def _after(self, **_: object) -> None:
        self.seconds += time.perf_counter() - self._started


async def bench_store(
    name: str,
    store: BlobStore,
    size_mib: int,
    block: bytearray,
    expected_sha: str,
    sampler: RssSampler,
    baseline: int,
) -> list[Row]:
    key = "bench/object.bin"

    async def put() -> int:
        return await store.put(key, achunks(block, size_mib))

    async def get() -> str:
        digest = hashlib.sha256()
        async for chunk in store.get(key):
            digest.update(chunk)
        return digest.hexdigest()

    timer = CompleteTimer(store) if isinstance(store, S3BlobStore) else None
    written, put_s, put_peak = await measure(sampler, baseline, put)
    digest, get_s, get_peak = await measure(sampler, baseline, get)
    await store.delete(key)
    rows = [
        Row(name, "put (in)", put_s, put_peak, written == size_mib * MIB),
        Row(name, "get (out)+sha256", get_s, get_peak, digest == expected_sha),
    ]
    if timer is not None and timer.seconds > 0:
        # Same transfer with moto's server-side assembly taken out.
        rows.insert(1, Row(name, "  put w/o complete", put_s - timer.seconds, None, rows[0].ok))
    return rows


def file_copy_seconds(workdir: Path, block: bytearray, size_mib: int) -> float:
    src, dst = workdir / "copy-src.bin", workdir / "copy-dst.bin"
    with open(src, "wb") as f:
        for chunk in chunks(block, size_mib):
            f.write(chunk)
    started = time.perf_counter()
    shutil.copyfile(src, dst)
    elapsed = time.perf_counter() - started
    src.unlink()
    dst.unlink()
    return elapsed


def print_table(rows: list[Row], copy_s: float, size_mib: int, baseline: int) -> bool:
    copy_rate = size_mib / copy_s
    header = (
        f"{'backend':<8} {'direction':<18} {'seconds':>8} {'MB/s':>8} "
        f"{'vs copy':>8} {'peak RSS +MB':>13} {'target':>7} {'data':>5}"
    )
    print()
    print(
        f"object: {size_mib} MB (1 MB = 2^20 bytes) in 1 MB chunks; "
        f"process baseline RSS {baseline / MIB:.0f} MB; "
        f"target: peak < {TARGET_PEAK_MIB} MB above baseline"
    )
    print(header)
    print("-" * len(header))
    all_ok = True
    for row in rows:
        rate = row.mib_per_s(size_mib)
        if row.peak_mib is None:  # derived row, no memory figure of its own
            peak, verdict = "-", "-"
        else:
            within = row.peak_mib < TARGET_PEAK_MIB
            all_ok = all_ok and within
            peak, verdict = f"{row.peak_mib:.1f}", "ok" if within else "OVER"
        all_ok = all_ok and row.ok
        print(
            f"{row.backend:<8} {row.direction:<18} {row.seconds:>8.2f} {rate:>8.1f} "
            f"{rate / copy_rate:>7.2f}x {peak:>13} {verdict:>7} {'ok' if row.ok else 'BAD':>5}"
        )
    print(
        f"{'file':<8} {'shutil.copyfile':<18} {copy_s:>8.2f} {copy_rate:>8.1f} "
        f"{1.0:>7.2f}x {'-':>13} {'-':>7} {'-':>5}"
    )
    print()
    print(
        "notes: 'vs copy' = throughput / shutil.copyfile throughput (same size, same disk, "
        "page cache warm).\n"
        "       fs put includes fsync of the data and directory; copyfile does not sync.\n"
        "       s3 runs against moto (single Python process), RSS of the server not counted;\n"
        "       'put w/o complete' subtracts moto's CompleteMultipartUpload (server-side assembly)."
    )
    return all_ok


async def run(size_mib: int, backends: list[str]) -> bool:
    sampler = RssSampler()
    block = make_block()
    expected = hashlib.sha256()
    for chunk in chunks(block, size_mib):
        expected.update(chunk)
    expected_sha = expected.hexdigest()

    with tempfile.TemporaryDirectory(prefix="hds-bench-") as tmp, MotoS3Server() as s3:
        workdir = Path(tmp)
        stores: dict[str, BlobStore] = {}
        if "fs" in backends:
            stores["fs"] = FilesystemBlobStore(workdir / "blobs")
        s3_store: S3BlobStore | None = None
        if "s3" in backends:
            s3_store = stores["s3"] = s3.blobstore("bench")
        for store in stores.values():
            await store.open()
        if s3_store is not None:
            await s3_store.ensure_bucket()
            # One tiny round trip so lazily created HTTP machinery is in the baseline.
            await s3_store.put_bytes("warmup", b"x")
            await s3_store.get_bytes("warmup")
            await s3_store.delete("warmup")

        gc.collect()
        sampler.start()
        time.sleep(0.1)
        baseline = sampler.current()

        rows: list[Row] = []
        try:
            for name, store in stores.items():
                print(
                    f"... {name}: streaming {size_mib} MB in and out", file=sys.stderr, flush=True
                )
                rows += await bench_store(
                    name, store, size_mib, block, expected_sha, sampler, baseline
                )
        finally:
            for store in stores.values():
                await store.close()
            sampler.stop()
        print("... plain file copy", file=sys.stderr, flush=True)
        copy_s = file_copy_seconds(workdir, block, size_mib)
    return print_table(rows, copy_s, size_mib, baseline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=500, help="object size in MiB")
    parser.add_argument(
        "--backend",
        action="append",
        choices=["fs", "s3"],
        help="backend(s) to run (default: both)",
    )
    args = parser.parse_args(argv)
    if args.size_mb < 1:
        parser.error("--size-mb must be >= 1")
    ok = asyncio.run(run(args.size_mb, args.backend or ["fs", "s3"]))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
