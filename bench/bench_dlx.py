"""DLX download benchmark: the whole suite as separate processes, measured from outside.

    .venv/bin/python bench/bench_dlx.py [--instances 500] [--rows 512] [--big-gb 2]
                                        [--backend fs|s3] [--db sqlite|postgres]

Starts the five services like ``make run`` does (``deploy/local/run.py``), in a temporary
state directory (default: SQLite + filesystem blobs; ``--db postgres`` uses temporary
databases on the local PostgreSQL server, ``--backend s3`` moto's S3 server), publishes
through the gateway as the demo institution and then measures, in one run:

* baseline: the stored (encrypted) blobs of the study read raw, straight from the blob
  store - the files under ``blobs/`` or GETs from S3 - one after the other, MB/s;
* ``GET /dlx/v1/downloadall`` through the gateway (token from ``/dlx/v1/tokentfa``),
  streamed to /dev/null by an aiohttp client in this process, MB/s and the ratio to the
  baseline; the ZIP's length is checked against Content-Length and its end record read;
* time to first byte of ``downloadall`` and of ``download/{study}`` (median of a few);
* peak RSS of the DLX and storage processes (and the gateway's, for reference), sampled
  every 20 ms with psutil while one client downloads a 2 GB package (``--big-gb``; 954
  instances of 1024x1024) with ``downloadall``; target: under 150 MB per process. The
  three are restarted after publishing (``--no-restart`` keeps them), so that what ingest
  left in their heaps is not counted against the download.

With the defaults the run takes about two minutes on a busy 2-core machine, most of it
publishing the 2 GB package (``--big-gb 1`` halves that).

The bench reports and exits 0; it asserts nothing. Every process it started is stopped
at the end, also on Ctrl-C. MB are 10^6 bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import email as email_parser
import email.policy as email_policy
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType

import aiohttp
import httpx
import numpy as np
import psutil
from pydicom.uid import generate_uid

from hds_client.api import ApiError, SuiteClient
from hds_common.testing.dicom import make_dicom
from hds_common.testing.ports import free_port_block

REPO = Path(__file__).resolve().parents[1]
MB = 1_000_000
MIB = 1024 * 1024
TARGET_RSS_MB = 150.0
BIRTH_DATE = "19700101"
# Bytes of DICOM per multipart upload request, and requests in flight while publishing.
UPLOAD_BATCH_BYTES = 24 * MIB
UPLOAD_CONCURRENCY = 3
SAMPLE_INTERVAL_SECONDS = 0.02
# End of central directory (22 + comment <= 64 KiB) plus the ZIP64 records before it.
ZIP_TAIL_BYTES = 66 * 1024 + 98


def load_local_runner() -> ModuleType:
    """``deploy/local/run.py``: the environment every service of ``make run`` gets."""
    spec = importlib.util.spec_from_file_location("hds_local_run", REPO / "deploy/local/run.py")
    if spec is None or spec.loader is None:
        raise SystemExit("deploy/local/run.py not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the suite ---------------------------------------------------------------------------


@dataclass
class Suite:
    var: Path
    env: dict[str, str]
    services: tuple[str, ...]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def gateway_url(self) -> str:
        return self.env["HDS_PUBLIC_BASE_URL"]

    @property
    def credentials(self) -> dict[str, str]:
        return dict(json.loads((self.var / "demo-credentials.json").read_text()))

    def run(self, *args: str) -> None:
        """A one-off command (migration, demo account) with the suite's environment."""
        answer = subprocess.run(
            [sys.executable, "-m", *args], env=self.env, capture_output=True, check=False
        )
        if answer.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{answer.stderr.decode()[-3000:]}")

    def start(self, names: tuple[str, ...] | None = None) -> None:
        for name in names or self.services:
            with (self.var / f"{name}.log").open("ab") as log:
                # A session of their own: Ctrl-C reaches only the bench, which then stops
                # the services in order instead of all of them dying mid-request.
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", f"hds_{name}", "serve"],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def stop(self, names: tuple[str, ...] | None = None) -> None:
        stopping = {
            name: process
            for name, process in self.processes.items()
            if names is None or name in names
        }
        for process in stopping.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 15
        for name, process in stopping.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            del self.processes[name]

    async def restart(self, *names: str) -> None:
        self.stop(names)
        self.start(names)
        await self.wait_ready()

    def pids(self, *names: str) -> dict[str, int]:
        return {name: self.processes[name].pid for name in names}

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.var / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    async def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                self.check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.gateway_url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.25)
        raise SystemExit(f"the suite was not ready after {timeout:.0f} s")


async def start_suite(
    stack: contextlib.AsyncExitStack, work: Path, *, db: str, backend: str
) -> Suite:
    runner = load_local_runner()
    var = work / "var"
    var.mkdir()
    env = {
        **os.environ,
        **runner.suite_environment(var, free_port_block(), "127.0.0.1"),
        # The institution publishes the big package too; the default quota is 1 GiB.
        "HDS_AUTH_DEFAULT_QUOTA_MIB": str(1 << 24),
        # As `make run`: the development demo institution publishes.
        "HDS_AUTH_DEMO_INSTITUTION": "true",
    }
    if db == "postgres":
        from hds_common.testing.postgres import temporary_database

        for name in runner.MIGRATED:
            url = await stack.enter_async_context(temporary_database(f"hds_bench_{name}"))
            env[f"HDS_{name.upper()}_DATABASE_URL"] = url
    if backend == "s3":
        from hds_common.testing.s3server import MotoS3Server

        s3 = stack.enter_context(MotoS3Server(log_path=var / "moto.log"))
        store = s3.blobstore("hds-bench")
        async with store:
            await store.ensure_bucket()
        env["HDS_STORAGE_BLOB_URL"] = s3.blobstore_url("hds-bench")
    suite = Suite(var=var, env=env, services=tuple(runner.SERVICES))
    for name in runner.MIGRATED:
        await asyncio.to_thread(suite.run, f"hds_{name}", "migrate")
    await asyncio.to_thread(
        suite.run, "hds_auth", "ensure-demo", "--output", str(var / "demo-credentials.json")
    )
    stack.callback(suite.stop)
    suite.start()
    await suite.wait_ready()
    return suite


# -- publishing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    package_id: str
    code: str
    instances: int
    dicom_bytes: int
    seconds: float


def instance_batches(count: int, rows: int, columns: int) -> Iterator[range]:
    """Instance numbers in groups of about UPLOAD_BATCH_BYTES."""
    per_batch = max(1, UPLOAD_BATCH_BYTES // (rows * columns * 2))
    for start in range(1, count + 1, per_batch):
        yield range(start, min(count, start + per_batch - 1) + 1)


def make_instances(
    numbers: range, *, pixels: bytes, rows: int, columns: int, study_uid: str, series_uid: str
) -> list[bytes]:
    """One CT slice per number: the same pixel block, its own header and UIDs."""
    return [
        make_dicom(
            patient_name="Bench^Mark",
            patient_id="BENCH-DLX",
            birth_date=BIRTH_DATE,
            study_uid=study_uid,
            series_uid=series_uid,
            study_description="CT Benchmark",
            instance_number=number,
            rows=rows,
            columns=columns,
            pixel_data=pixels,
        ).data
        for number in numbers
    ]


async def register_patient(
    client: httpx.AsyncClient, outbox: Path, email: str, password: str
) -> None:
    """Register a patient through the gateway and open the activation link from the
    outbox, as a patient of the embedded default would."""
    registered = await client.post(
        "/auth/v1/register", json={"email": email, "password": password, "role": "patient"}
    )
    registered.raise_for_status()
    for path in sorted(outbox.glob("*.eml"), reverse=True):
        message = email_parser.message_from_bytes(path.read_bytes(), policy=email_policy.default)
        if email in str(message["To"]) and isinstance(message, EmailMessage):
            link = re.search(r"/auth/v1/activate\?token=([A-Za-z0-9_-]+)", message.get_content())
            if link:
                activated = await client.get("/auth/v1/activate", params={"token": link[1]})
                activated.raise_for_status()
                return
    raise SystemExit(f"no activation mail to {email} in {outbox}")


async def login(client: httpx.AsyncClient, credentials: dict[str, str]) -> dict[str, str]:
    """The account token's header of a login through the suite's client."""
    tokens = await SuiteClient(http=client).login(credentials["email"], credentials["password"])
    return {"Authorization": f"Bearer {tokens.access_token}"}


async def publish(
    client: httpx.AsyncClient,
    credentials: dict[str, str],
    *,
    count: int,
    rows: int,
    seed: int,
    name: str,
) -> Published:
    """Publish ``count`` generated ``rows``x``rows`` instances of one study as a package,
    in multipart batches over the gateway with the suite's client, and issue its access
    code."""
    api = SuiteClient(http=client)
    await api.login(credentials["email"], credentials["password"])
    package_id = (await api.create_package()).id
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 4096, size=rows * rows, dtype=np.uint16).tobytes()
    study_uid, series_uid = str(generate_uid()), str(generate_uid())
    batches = list(instance_batches(count, rows, rows))
    limit = asyncio.Semaphore(UPLOAD_CONCURRENCY)
    sent = 0
    done = 0
    started = time.perf_counter()

    async def upload(numbers: range) -> None:
        nonlocal sent, done
        async with limit:
            files = await asyncio.to_thread(
                make_instances,
                numbers,
                pixels=pixels,
                rows=rows,
                columns=rows,
                study_uid=study_uid,
                series_uid=series_uid,
            )
            named = [(f"IM{n:06d}.dcm", data) for n, data in zip(numbers, files, strict=True)]
            try:
                await api.upload_instances(package_id, named)
            except ApiError as exc:
                raise SystemExit(str(exc)) from None
            sent += sum(len(data) for data in files)
            done += len(files)
            progress(f"  publishing the {name}: {done}/{count} instances")

    async with asyncio.TaskGroup() as group:
        for numbers in batches:
            group.create_task(upload(numbers))
    await api.complete_package(package_id)
    issued = await api.issue_code(package_id, dt.datetime.strptime(BIRTH_DATE, "%Y%m%d").date())
    seconds = time.perf_counter() - started
    progress(None)
    return Published(package_id, issued.code, count, sent, seconds)


def progress(text: str | None) -> None:
    """A status line that the next one overwrites (only on a terminal)."""
    if not sys.stderr.isatty():
        return
    sys.stderr.write("\r\033[K" + (text or ""))
    sys.stderr.flush()


# -- the raw baseline ----------------------------------------------------------------------


def read_files_raw(root: Path) -> int:
    """Every file under ``root``, read sequentially into a reused 1 MiB buffer."""
    buffer = bytearray(MIB)
    view = memoryview(buffer)
    total = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        with path.open("rb", buffering=0) as file:
            while read := file.readinto(view):
                total += read
    return total


async def read_blobs_raw(blob_url: str, package_id: str) -> tuple[float, int, int]:
    """(seconds, bytes, blobs) of reading the package's stored blobs as they are stored."""
    prefix = f"objects/{package_id}/"
    if "://" not in blob_url or blob_url.startswith("file://"):
        root = Path(blob_url.removeprefix("file://")) / prefix
        count = sum(1 for path in root.rglob("*") if path.is_file())
        started = time.perf_counter()
        total = await asyncio.to_thread(read_files_raw, root)
        return time.perf_counter() - started, total, count
    from hds_common.blobstore import blobstore_from_url

    store = blobstore_from_url(blob_url)
    async with store:
        keys = [info.key async for info in store.list(prefix)]
        total = 0
        started = time.perf_counter()
        for key in keys:
            async for chunk in store.get(key):
                total += len(chunk)
        return time.perf_counter() - started, total, len(keys)


# -- downloads through the gateway ---------------------------------------------------------


@dataclass
class Download:
    status: int
    content_length: int | None
    received: int
    seconds: float
    headers_seconds: float
    first_byte_seconds: float
    tail: bytes

    @property
    def mb_per_second(self) -> float:
        return self.received / MB / self.seconds


async def dlx_token(gateway: str, code: str) -> str:
    """A DLX token for ``code`` through the suite's client (the downloads themselves are
    measured with aiohttp, streamed)."""
    async with SuiteClient(gateway) as api:
        try:
            return await api.dlx_token(code, BIRTH_DATE)
        except ApiError as exc:
            raise SystemExit(str(exc)) from None


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def download(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    *,
    first_byte_only: bool = False,
) -> Download:
    """GET ``url``, streaming the body to /dev/null (or stopping after its first chunk)."""
    for _ in range(30):
        started = time.perf_counter()
        answer = await session.get(url, headers=headers)
        try:
            headers_at = time.perf_counter()
            if answer.status == 503:
                # Download slots of an aborted earlier request not yet given back.
                await asyncio.sleep(float(answer.headers.get("Retry-After", "1") or 1) / 10)
                continue
            if answer.status != 200:
                raise SystemExit(f"GET {url} answered {answer.status}: {await answer.text()}")
            length = answer.headers.get("Content-Length")
            received = 0
            first_at = 0.0
            # The last two chunks hold the ZIP's end records (at most ~66 KiB).
            previous = last = b""
            with open(os.devnull, "wb", buffering=0) as sink:
                async for chunk in answer.content.iter_any():
                    if not first_at:
                        first_at = time.perf_counter()
                        if first_byte_only:
                            break
                    sink.write(chunk)
                    received += len(chunk)
                    previous, last = last, chunk
            finished = time.perf_counter()
        finally:
            if first_byte_only:
                answer.close()
            else:
                answer.release()
        return Download(
            status=answer.status,
            content_length=int(length) if length is not None else None,
            received=received,
            seconds=finished - started,
            headers_seconds=headers_at - started,
            first_byte_seconds=first_at - started,
            tail=(previous + last)[-ZIP_TAIL_BYTES:],
        )
    raise SystemExit(f"GET {url}: the DLX stayed busy")


def zip_entries(tail: bytes) -> int | None:
    """The entry count of the ZIP's end of central directory record (ZIP64 aware)."""
    end = tail.rfind(b"PK\x05\x06")
    if end < 0 or len(tail) < end + 22:
        return None
    entries = int(struct.unpack_from("<H", tail, end + 10)[0])
    if entries == 0xFFFF:
        end64 = tail.rfind(b"PK\x06\x06", 0, end)
        if end64 < 0:
            return None
        entries = int(struct.unpack_from("<Q", tail, end64 + 32)[0])
    return entries


# -- memory --------------------------------------------------------------------------------


class RssSampler:
    """Samples the resident set size of some processes in a thread every 20 ms."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.baseline = {name: p.memory_info().rss for name, p in self.processes.items()}
        self.peak = dict(self.baseline)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, process in self.processes.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], process.memory_info().rss)
            self.samples += 1
            self._stop.wait(SAMPLE_INTERVAL_SECONDS)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the run -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--instances", type=int, default=500, help="instances of the study")
    parser.add_argument("--rows", type=int, default=512, help="rows = columns of each slice")
    parser.add_argument(
        "--big-gb", type=float, default=2.0, help="GB of DICOM in the big package (0: skip)"
    )
    parser.add_argument(
        "--big-rows", type=int, default=1024, help="rows = columns of the big package's slices"
    )
    parser.add_argument("--backend", choices=["fs", "s3"], default="fs", help="blob store")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each throughput figure")
    parser.add_argument("--ttfb-samples", type=int, default=5, help="requests per TTFB median")
    parser.add_argument(
        "--no-restart",
        action="store_true",
        help="measure the big download on the processes that ingested (no restart)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the state directory")
    return parser.parse_args()


def table(rows: list[tuple[str, ...]], align: str) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(width) if kind == "l" else cell.rjust(width)
            for cell, width, kind in zip(row, widths, align, strict=True)
        ]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def say(text: str) -> None:
    progress(None)
    print(text, flush=True)


async def run(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    task = asyncio.current_task()
    if task is not None:
        # SIGTERM (a stopped `make bench`) ends the run like Ctrl-C: the cleanup runs.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    work = Path(tempfile.mkdtemp(prefix="hds-bench-dlx-"))
    async with contextlib.AsyncExitStack() as stack:
        if not args.keep:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        say(f"starting the suite ({args.db}, {args.backend}) in {work} ...")
        suite = await start_suite(stack, work, db=args.db, backend=args.backend)
        started_after = time.perf_counter() - began
        try:
            results = await measure(args, suite)
        except (Exception, SystemExit):
            progress(None)
            for name in suite.services:
                process = suite.processes.get(name)
                state = "running" if process and process.poll() is None else "exited"
                if process is not None and process.returncode is not None:
                    state += f" with {process.returncode}"
                tail = suite.log_tail(name, 1500)
                print(f"--- {name} ({state}); last lines of its log ---\n{tail}", file=sys.stderr)
            raise
    report(args, results)
    if args.keep:
        print(f"\nstate kept in {work}")
    print(
        f"\nsuite started in {started_after:.0f} s; whole run, stopping included, "
        f"{time.perf_counter() - began:.0f} s"
    )


@dataclass
class Results:
    study: Published
    raw_runs: list[tuple[float, int, int]]
    dlx_runs: list[Download]
    ttfb_all: list[Download]
    ttfb_one: list[Download]
    # RSS over publishing and the study's downloads (baseline: idle after start).
    early_memory: RssSampler
    # CPU seconds spent by each process (and this client) during the study's downloadall runs.
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    big: Published | None = None
    big_download: Download | None = None
    big_memory: RssSampler | None = None
    restarted: bool = False


MEASURED = ("dlx", "storage", "gateway")


async def measure(args: argparse.Namespace, suite: Suite) -> Results:
    gateway = suite.gateway_url
    early_memory = RssSampler(suite.pids(*MEASURED))
    with early_memory:
        async with httpx.AsyncClient(
            base_url=gateway, timeout=httpx.Timeout(600, connect=10)
        ) as api:
            study = await publish(
                api, suite.credentials, count=args.instances, rows=args.rows, seed=1, name="study"
            )
        say(
            f"published {study.instances} instances of {args.rows}x{args.rows} 16-bit CT "
            f"({study.dicom_bytes / MB:.1f} MB) in {study.seconds:.1f} s"
        )
        async with dlx_session() as session:
            token = await dlx_token(gateway, study.code)
            auth = bearer(token)
            async with SuiteClient(gateway) as api:
                items = await api.dlx_list(token)
            study_url = next(
                f"{gateway}/dlx/v1/download/{item.id}" for item in items if item.study_instance_uid
            )
            all_url = f"{gateway}/dlx/v1/downloadall"
            results = Results(study, [], [], [], [], early_memory)
            # Alternated, so that a burst of load from elsewhere hits both alike.
            for run in range(1, args.repeat + 1):
                progress(f"  raw read and downloadall, run {run}/{args.repeat}")
                results.raw_runs.append(
                    await read_blobs_raw(suite.env["HDS_STORAGE_BLOB_URL"], study.package_id)
                )
                before = cpu_times(suite.pids(*MEASURED))
                results.dlx_runs.append(await download(session, all_url, auth))
                for name, seconds in cpu_times(suite.pids(*MEASURED)).items():
                    spent = seconds - before[name]
                    results.cpu_seconds[name] = results.cpu_seconds.get(name, 0.0) + spent
            progress("  time to first byte")
            for _ in range(args.ttfb_samples):
                results.ttfb_all.append(
                    await download(session, all_url, auth, first_byte_only=True)
                )
                results.ttfb_one.append(
                    await download(session, study_url, auth, first_byte_only=True)
                )
            suite.check_alive()
        if args.big_gb <= 0:
            return results
        per_instance = args.big_rows * args.big_rows * 2
        count = max(1, round(args.big_gb * 1e9 / per_instance))
        async with httpx.AsyncClient(
            base_url=gateway, timeout=httpx.Timeout(600, connect=10)
        ) as api:
            big = results.big = await publish(
                api,
                suite.credentials,
                count=count,
                rows=args.big_rows,
                seed=2,
                name="big package",
            )
        say(
            f"published the big package: {count} instances of {args.big_rows}x"
            f"{args.big_rows} ({big.dicom_bytes / MB:.0f} MB) in {big.seconds:.1f} s"
        )
    if not args.no_restart:
        # Fresh processes, so that what ingest left in the heap is not counted against
        # the download (Python rarely hands freed memory back to the system).
        say("restarting dlx, storage and gateway for the memory measurement ...")
        await suite.restart(*MEASURED)
        results.restarted = True
    async with dlx_session() as session:
        big_auth = bearer(await dlx_token(gateway, big.code))
        await asyncio.sleep(1.0)
        progress("  downloadall of the big package")
        results.big_memory = RssSampler(suite.pids(*MEASURED))
        with results.big_memory:
            results.big_download = await download(
                session, f"{gateway}/dlx/v1/downloadall", big_auth
            )
    suite.check_alive()
    return results


def cpu_times(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each process and of this one (the client)."""
    processes = {name: psutil.Process(pid) for name, pid in pids.items()}
    processes["client (this bench)"] = psutil.Process()
    return {
        name: (times := process.cpu_times()).user + times.system
        for name, process in processes.items()
    }


def dlx_session() -> aiohttp.ClientSession:
    """The DLX client: aiohttp with 1 MiB reads, as cheap per byte as a Python client gets."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=16),
        read_bufsize=MIB,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
    )


def report(args: argparse.Namespace, results: Results) -> None:
    study = results.study
    database = "PostgreSQL" if args.db == "postgres" else "SQLite"
    blobs = "S3 (moto)" if args.backend == "s3" else "filesystem"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"\nDLX benchmark: {database} + {blobs} blobs, every service its own process, "
        f"{os.cpu_count()} CPUs, load average {load}"
    )
    print(
        f"study: {study.instances} instances of {args.rows}x{args.rows} 16-bit CT, "
        f"{study.dicom_bytes / MB:.1f} MB of DICOM, published through the gateway in "
        f"{study.seconds:.1f} s ({study.dicom_bytes / MB / study.seconds:.1f} MB/s)"
    )

    raw_rates = [size / MB / seconds for seconds, size, _ in results.raw_runs]
    raw_bytes, raw_blobs = results.raw_runs[0][1], results.raw_runs[0][2]
    dlx_rates = [run.mb_per_second for run in results.dlx_runs]
    raw_best = max(raw_rates)
    print(
        f"\nthroughput (best and median of {len(raw_rates)} alternating runs; ratio: best to "
        "the raw best)"
    )
    rows: list[tuple[str, ...]] = [("", "MB", "best MB/s", "median MB/s", "ratio")]
    how = "GETs from S3" if args.backend == "s3" else "files read"
    rows.append(
        (
            f"raw read of the stored blobs ({raw_blobs} {how}, one after another)",
            f"{raw_bytes / MB:.1f}",
            f"{raw_best:.1f}",
            f"{statistics.median(raw_rates):.1f}",
            "1.00",
        )
    )
    rows.append(
        (
            "downloadall through the gateway (ZIP to /dev/null)",
            f"{results.dlx_runs[0].received / MB:.1f}",
            f"{max(dlx_rates):.1f}",
            f"{statistics.median(dlx_rates):.1f}",
            f"{max(dlx_rates) / raw_best:.3f}",
        )
    )
    if results.big_download is not None:
        rate = results.big_download.mb_per_second
        rows.append(
            (
                "downloadall of the big package (one run)",
                f"{results.big_download.received / MB:.1f}",
                f"{rate:.1f}",
                "",
                f"{rate / raw_best:.3f}",
            )
        )
    print(table(rows, "lrrrr"))
    gigabytes = sum(run.received for run in results.dlx_runs) / 1e9
    seconds = sum(run.seconds for run in results.dlx_runs)
    print(
        "  CPU seconds per GB of ZIP during the study's downloadall runs (a load-independent "
        "cost):\n    "
        + ", ".join(
            f"{name} {spent / gigabytes:.2f}" for name, spent in results.cpu_seconds.items()
        )
        + f"; {sum(results.cpu_seconds.values()) / seconds:.2f} of {os.cpu_count()} CPUs busy"
    )

    print(f"\ntime to first byte (ms; median, min and max of {len(results.ttfb_all)} requests)")
    rows = [("", "headers", "first body byte", "min", "max")]
    for label, samples in (
        ("downloadall", results.ttfb_all),
        ("download/{study}", results.ttfb_one),
    ):
        firsts = [sample.first_byte_seconds * 1000 for sample in samples]
        heads = [sample.headers_seconds * 1000 for sample in samples]
        rows.append(
            (
                label,
                f"{statistics.median(heads):.1f}",
                f"{statistics.median(firsts):.1f}",
                f"{min(firsts):.1f}",
                f"{max(firsts):.1f}",
            )
        )
    print(table(rows, "lrrrr"))

    print("\nZIP checks (length against Content-Length; entries from the end record)")
    rows = [("download", "Content-Length", "received", "equal", "ZIP entries", "instances")]
    checked = [(f"study, run {i}", run, study) for i, run in enumerate(results.dlx_runs, 1)]
    if results.big is not None and results.big_download is not None:
        checked.append(("big package", results.big_download, results.big))
    for label, run, package in checked:
        entries = zip_entries(run.tail)
        rows.append(
            (
                label,
                f"{run.content_length}",
                f"{run.received}",
                "yes" if run.content_length == run.received else "NO",
                "unreadable" if entries is None else str(entries),
                str(package.instances),
            )
        )
    print(table(rows, "lrrrrr"))

    early, big_memory = results.early_memory, results.big_memory
    if results.big is None or results.big_download is None or big_memory is None:
        print("\npeak RSS: no big package (--big-gb 0)")
        return
    state = "restarted before it" if results.restarted else "not restarted (--no-restart)"
    print(
        f"\nRSS (MB) while one client streams the big package with downloadall: "
        f"{results.big_download.received / MB:.0f} MB ZIP of {results.big.instances} "
        f"instances, sampled every {SAMPLE_INTERVAL_SECONDS * 1000:.0f} ms "
        f"({big_memory.samples} samples); processes {state}"
    )
    rows = [
        (
            "process",
            "idle at start",
            "peak publishing",
            "before",
            "peak",
            "peak - before",
            f"peak < {TARGET_RSS_MB:.0f} MB",
        )
    ]
    for name in MEASURED:
        before = big_memory.baseline[name] / MB
        peak = big_memory.peak[name] / MB
        rows.append(
            (
                "gateway (reference)" if name == "gateway" else name,
                f"{early.baseline[name] / MB:.1f}",
                f"{early.peak[name] / MB:.1f}",
                f"{before:.1f}",
                f"{peak:.1f}",
                f"{peak - before:+.1f}",
                "" if name == "gateway" else ("yes" if peak < TARGET_RSS_MB else "NO"),
            )
        )
    print(table(rows, "lrrrrrr"))
    print(
        "  idle at start / peak publishing: from the start until the big package was "
        "published\n  (ingest, the study's downloads); before / peak: the big download."
    )
    if args.big_gb < 2:
        print(
            f"  The big package was {args.big_gb:g} GB; the target is stated for 2 GB (the "
            "default):\n    .venv/bin/python bench/bench_dlx.py --big-gb 2"
        )


def main() -> None:
    args = parse_args()
    # asyncio.run turns Ctrl-C into a cancellation of run(), so its cleanup (stopping the
    # services, removing the state directory) happens before KeyboardInterrupt is raised.
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        print("\ninterrupted; every started process was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    except asyncio.CancelledError:
        print("\nterminated; every started process was stopped", file=sys.stderr)
        raise SystemExit(143) from None


if __name__ == "__main__":
    main()
