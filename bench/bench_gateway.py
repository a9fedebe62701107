"""Gateway benchmark: bulk throughput and added latency of the proxy hop.

    python bench/bench_gateway.py [--real-gib 1] [--size-mib 1024] [--requests 2000]
                                  [--repeat 3] [--compare-clients]

Three measurements, each straight from an upstream and through the gateway, with curl as
the client (another process) and best of ``--repeat`` runs:

- real downloads (the figure for the target, >= 0.8): the suite's own services as
  ``make run`` starts them (``bench_dlx.start_suite``: SQLite + filesystem blobs, separate
  processes), with a study of ``--real-gib`` GiB published through the gateway and
  imported into a patient account. Downloaded are the study's PDI archive from the storage
  service (account token: storage decrypts) and the DLX ``downloadall`` of the same
  package (DLX token), each straight from the service's own port and through the gateway,
  same URL and headers. ``--real-gib 0`` skips this part.
- the hop's own cost: a plain upstream (uvicorn serving ``--size-mib`` MiB from memory, a
  small JSON answer and a JWKS) that costs next to nothing per byte, so everything the
  gateway adds shows. Client, upstream and gateway then share the machine's cores, and
  on a machine with few cores the hop's CPU time per GB bounds the ratio, whatever the
  hop is written in: where ``nginx`` is on the PATH, the same download through nginx
  (``proxy_buffering off``) is measured beside the gateway as the reference. The
  gateway's peak RSS during the download shows it does not buffer.
- latency: ``--requests`` small JSON GETs to the plain upstream over one keep-alive
  connection, straight and through the gateway (token verified, rate limits counted,
  access log written); the difference of the medians is the added latency (target < 2 ms).

``--compare-clients`` also measures a minimal FastAPI proxy hop using httpx streaming, one
using aiohttp's client (the measurement behind the choice of aiohttp for the bulk path), a
bare uvloop TCP byte pump (the floor of any Python hop that copies the bytes), and a pump
that moves the download with ``os.splice`` (zero copy in the hop). CPU seconds per GB are
printed for the client (curl), the upstream, the gateway and each hop: unlike GB/s they
hardly depend on what else the machine is running.

The bench reports and exits 0; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import http.client
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from hds_common.testing.ports import free_port
from hds_common.testing.processes import stop_process

MIB = 1024 * 1024
GIB = 1024 * MIB
TARGET_RATIO = 0.8
TARGET_ADDED_MS = 2.0
BLOB_PATH = "/storage/v1/objects/blob"
PING_PATH = "/storage/v1/ping"
# Instances of the real study: 1024x1024 16-bit CT slices, 2 MiB of pixels each.
REAL_ROWS = 1024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


# --- the processes under test -------------------------------------------------------------


def upstream_app(jwks: bytes, size: int) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A bare ASGI app: as cheap as an upstream can be, so the hop is what gets measured."""
    chunk = os.urandom(MIB)
    pong = b'{"pong":true}'

    async def respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, _: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        path = scope["path"]
        if path == BLOB_PATH:
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(size).encode()),
                (b"accept-ranges", b"bytes"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            remaining = size
            while remaining > 0:
                piece = chunk if remaining >= len(chunk) else chunk[:remaining]
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                remaining -= len(piece)
            await send({"type": "http.response.body", "body": b""})
        elif path == PING_PATH:
            await respond(send, 200, pong, b"application/json")
        elif path == "/.well-known/jwks.json":
            await respond(send, 200, jwks, b"application/json")
        elif path in ("/healthz", "/readyz"):
            await respond(send, 200, b'{"status":"ok"}', b"application/json")
        else:
            await respond(send, 404, b'{"status":404}', b"application/json")

    return app


def proxy_hop_app(client_kind: str, upstream: str) -> FastAPI:
    """A minimal streaming proxy hop with httpx or aiohttp, to compare the two clients."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if client_kind == "httpx":
            import httpx

            async with httpx.AsyncClient(base_url=upstream, timeout=60) as client:
                state["client"] = client
                yield
        else:
            import aiohttp

            async with aiohttp.ClientSession(auto_decompress=False, read_bufsize=MIB) as session:
                state["session"] = session
                yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/{path:path}")
    async def hop(path: str, _: Request) -> StreamingResponse:
        if client_kind == "httpx":
            client = state["client"]
            upstream_response = await client.send(
                client.build_request("GET", f"/{path}"), stream=True
            )

            async def httpx_body() -> AsyncIterator[bytes]:
                try:
                    async for piece in upstream_response.aiter_raw():
                        yield piece
                finally:
                    await upstream_response.aclose()

            return StreamingResponse(
                httpx_body(),
                headers={"content-length": upstream_response.headers["content-length"]},
            )
        response = await state["session"].get(f"{upstream}/{path}")

        async def aiohttp_body() -> AsyncIterator[bytes]:
            try:
                async for piece, _ in response.content.iter_chunks():
                    yield piece
            finally:
                response.release()

        return StreamingResponse(
            aiohttp_body(), headers={"content-length": response.headers["content-length"]}
        )

    return app


def run_pump(port: int, upstream_port: int) -> None:
    """A TCP byte pump on uvloop: no HTTP at all, one callback per socket read. The floor
    of what any Python proxy hop costs on this machine."""
    import asyncio

    import uvloop

    class Pump(asyncio.Protocol):
        def __init__(self, peer: Pump | None = None) -> None:
            self.peer = peer
            self.transport: Any = None
            self.pending = b""
            self.connecting: asyncio.Task[None] | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            if self.peer is None:  # the client side: connect to the upstream first
                self.connecting = asyncio.ensure_future(self._connect())

        async def _connect(self) -> None:
            loop = asyncio.get_running_loop()
            _, back = await loop.create_connection(lambda: Pump(self), "127.0.0.1", upstream_port)
            self.peer = back
            assert back.transport is not None
            back.transport.write(self.pending)

        def data_received(self, data: bytes) -> None:
            if self.peer is None or self.peer.transport is None:
                self.pending += data
            else:
                self.peer.transport.write(data)

        def pause_writing(self) -> None:
            if self.peer is not None and self.peer.transport is not None:
                self.peer.transport.pause_reading()

        def resume_writing(self) -> None:
            if self.peer is not None and self.peer.transport is not None:
                self.peer.transport.resume_reading()

        def connection_lost(self, _: Exception | None) -> None:
            if self.peer is not None and self.peer.transport is not None:
                self.peer.transport.close()

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Pump, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(serve())


def run_splice_pump(port: int, upstream_port: int) -> None:
    """A TCP pump that moves the upstream's bytes to the client with ``os.splice`` through
    a pipe: the kernel passes page references on, the hop copies nothing. The reference
    for zero-copy proxying (client to upstream is a plain copy: requests are small)."""
    import asyncio
    import fcntl

    import uvloop

    pipe_size = MIB
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    set_pipe_size = 1031  # F_SETPIPE_SZ

    async def ready(fd: int, *, write: bool) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        (loop.add_writer if write else loop.add_reader)(fd, done.set_result, None)
        try:
            await done
        finally:
            (loop.remove_writer if write else loop.remove_reader)(fd)

    async def handle(client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        upstream = socket.socket()
        upstream.setblocking(False)
        await loop.sock_connect(upstream, ("127.0.0.1", upstream_port))

        async def requests() -> None:
            while data := await loop.sock_recv(client, 65536):
                await loop.sock_sendall(upstream, data)

        forward = asyncio.ensure_future(requests())
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        fcntl.fcntl(write_end, set_pipe_size, pipe_size)
        in_pipe = 0
        try:
            while True:
                if in_pipe == 0:
                    try:
                        in_pipe = os.splice(upstream.fileno(), write_end, pipe_size, flags=flags)
                    except BlockingIOError:
                        await ready(upstream.fileno(), write=False)
                        continue
                    if in_pipe == 0:
                        break
                try:
                    in_pipe -= os.splice(read_end, client.fileno(), in_pipe, flags=flags)
                except BlockingIOError:
                    await ready(client.fileno(), write=True)
        except OSError:
            pass
        finally:
            forward.cancel()
            os.close(read_end)
            os.close(write_end)
            client.close()
            upstream.close()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(64)
        server.setblocking(False)
        tasks: set[asyncio.Future[None]] = set()
        while True:
            client, _ = await loop.sock_accept(server)
            client.setblocking(False)
            task = asyncio.ensure_future(handle(client))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    uvloop.run(serve())


def run_upstream(port: int, jwks_file: Path, size: int) -> None:
    import uvicorn

    app = upstream_app(jwks_file.read_bytes(), size)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


def run_proxy_hop(port: int, client_kind: str, upstream: str) -> None:
    import uvicorn

    uvicorn.run(
        proxy_hop_app(client_kind, upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


# --- measuring ----------------------------------------------------------------------------


def wait_until_up(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered on port {port}")


@contextmanager
def started(command: list[str], port: int, env: dict[str, str]) -> Iterator[psutil.Process]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_up(port, process)
        yield psutil.Process(process.pid)
    finally:
        stop_process(process)


class PeakRss:
    """Samples a process's RSS from a thread while a download runs."""

    def __init__(self, process: psutil.Process) -> None:
        self._process = process
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, int(self._process.memory_info().rss))
            self._stop.wait(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of ``process`` and its running children (nginx's worker)."""
    total = 0.0
    for member in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def download(url: str, headers: dict[str, str], size: int, cores: set[int] | None = None) -> float:
    """Seconds for one download of ``url`` by a separate client process (curl if present),
    on ``cores`` (all when None)."""
    pin: Callable[[], None] | None = None
    if cores is not None:
        on_cores = set(cores)

        def pin() -> None:
            os.sched_setaffinity(0, on_cores)

    curl = shutil.which("curl")
    if curl:
        command = [curl, "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        output = subprocess.run(
            [*command, url], check=True, capture_output=True, text=True, preexec_fn=pin
        ).stdout.split()
        received, seconds = int(output[0]), float(output[1])
    else:
        output = subprocess.run(
            [sys.executable, __file__, "client", url, json.dumps(headers)],
            check=True,
            capture_output=True,
            text=True,
            preexec_fn=pin,
        ).stdout.split()
        received, seconds = int(output[0]), float(output[1])
    if received != size:
        raise RuntimeError(f"{url}: received {received} bytes, expected {size}")
    return seconds


def run_client(url: str, headers_json: str) -> None:
    """Fallback download client (no curl): aiohttp in its own process."""
    import asyncio

    import aiohttp

    async def fetch() -> None:
        started_at = time.perf_counter()
        received = 0
        async with (
            aiohttp.ClientSession(auto_decompress=False, read_bufsize=MIB) as session,
            session.get(url, headers=json.loads(headers_json)) as response,
        ):
            async for piece in response.content.iter_chunked(MIB):
                received += len(piece)
        print(received, time.perf_counter() - started_at)

    asyncio.run(fetch())


def latencies(port: int, headers: dict[str, str], count: int) -> list[float]:
    """Milliseconds per small GET over one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    samples = []
    for index in range(count + count // 10):
        started_at = time.perf_counter()
        connection.request("GET", PING_PATH, headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started_at) * 1000
        if response.status != 200 or body != b'{"pong":true}':
            raise RuntimeError(f"unexpected answer {response.status}: {body[:200]!r}")
        if index >= count // 10:  # the first tenth warms up
            samples.append(elapsed)
    connection.close()
    return samples


class Throughput:
    """Downloads of one URL: the best bytes per second, and CPU seconds per GB of the client
    and of the processes serving them, summed over every download measured."""

    def __init__(self, url: str, headers: dict[str, str], size: int) -> None:
        self.url, self.headers, self.size = url, headers, size
        self.best = 0.0
        self._bytes = 0
        self._cpu: dict[str, float] = {}

    def measure(self, servers: dict[str, psutil.Process], cores: set[int] | None = None) -> None:
        client = children_cpu_seconds()
        served = {name: cpu_seconds(process) for name, process in servers.items()}
        self.best = max(self.best, self.size / download(self.url, self.headers, self.size, cores))
        self._bytes += self.size
        spent = {"client": children_cpu_seconds() - client}
        for name, process in servers.items():
            spent[name] = cpu_seconds(process) - served[name]
        for name, seconds in spent.items():
            self._cpu[name] = self._cpu.get(name, 0.0) + seconds

    @property
    def cpu_per_gb(self) -> dict[str, float]:
        return {name: seconds / (self._bytes / 1e9) for name, seconds in self._cpu.items()}

    def cpu(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.cpu_per_gb.items())


def throughput(
    url: str, headers: dict[str, str], size: int, repeat: int, servers: dict[str, psutil.Process]
) -> Throughput:
    result = Throughput(url, headers, size)
    for _ in range(repeat):
        result.measure(servers)
    return result


@dataclass(frozen=True)
class Placement:
    """Which cores the processes may use: ``hop`` for the gateway (or nginx), ``rest`` for
    the client and the upstream services; None: every core."""

    name: str
    hop: set[int] | None
    rest: set[int] | None


def placements(cores: int) -> list[Placement]:
    """Everything on every core, as a single machine runs it; and, given two cores or more,
    the hop alone on the last core, as deployed (the gateway has CPU of its own, in its
    own pods): the client and the upstream run on the same other cores in both of that
    placement's measurements, so its ratio is what the hop itself costs a download."""
    shared = Placement("shared cores", None, None)
    if cores < 2:
        return [shared]
    return [shared, Placement("gateway on its own core", {cores - 1}, set(range(cores - 1)))]


@contextmanager
def placed(
    placement: Placement, hops: list[psutil.Process], rest: list[psutil.Process]
) -> Iterator[None]:
    every = list(range(os.cpu_count() or 1))

    def pin(processes: list[psutil.Process], cores: set[int] | None) -> None:
        for process in processes:
            for member in (process, *process.children(recursive=True)):
                with contextlib.suppress(psutil.NoSuchProcess):
                    member.cpu_affinity(sorted(cores) if cores is not None else every)

    pin(hops, placement.hop)
    pin(rest, placement.rest)
    try:
        yield
    finally:
        pin(hops + rest, None)


@dataclass
class Comparison:
    """One download straight from the upstream and through a hop, in each placement."""

    name: str
    hop_name: str
    size: int
    repeat: int
    runs: list[tuple[Placement, Throughput, Throughput]]

    def report(self) -> None:
        print(f"{self.name}, {self.size / GIB:.2f} GiB, best of {self.repeat}:")
        print(f"  {'':<25} {'straight':>10} {'through ' + self.hop_name:>22}   ratio")
        for placement, direct, proxied in self.runs:
            ratio = proxied.best / direct.best
            verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
            print(
                f"  {placement.name:<25} {direct.best / 1e9:6.2f} GB/s {proxied.best / 1e9:15.2f}"
                f" GB/s   {ratio:5.2f}  (target >= {TARGET_RATIO}: {verdict})"
            )
        for placement, direct, proxied in self.runs:
            print(f"  CPU per GB, {placement.name}: straight {direct.cpu()}")
            print(f"  {'':<12}{'':<{len(placement.name)}}  through {proxied.cpu()}")


def compare(
    name: str,
    *,
    straight_url: str,
    through_url: str,
    headers: dict[str, str],
    size: int,
    repeat: int,
    upstreams: dict[str, psutil.Process],
    hop_name: str,
    hop: psutil.Process,
    cores: int,
) -> Comparison:
    runs = []
    for placement in placements(cores):
        direct = Throughput(straight_url, headers, size)
        proxied = Throughput(through_url, headers, size)
        with placed(placement, [hop], list(upstreams.values())):
            # Alternated, so that a burst of load from elsewhere hits both alike.
            for _ in range(repeat):
                direct.measure(upstreams, placement.rest)
                proxied.measure({**upstreams, hop_name: hop}, placement.rest)
        runs.append((placement, direct, proxied))
    return Comparison(name, hop_name, size, repeat, runs)


# --- real downloads: the suite's own services ---------------------------------------------


def content_length(url: str, headers: dict[str, str]) -> int:
    """The length a GET of ``url`` announces (the body is not read)."""
    import httpx

    with httpx.stream("GET", url, headers=headers, timeout=60) as answer:
        if answer.status_code != 200:
            answer.read()
            raise RuntimeError(f"GET {url} answered {answer.status_code}: {answer.text[:300]}")
        return int(answer.headers["content-length"])


async def measure_real(args: argparse.Namespace, cores: int) -> list[Comparison]:
    """Publish a study of ``--real-gib`` GiB, import it into a patient account, and download
    it from storage and from the DLX, straight and through the gateway."""
    import httpx

    import bench_dlx

    work = Path(tempfile.mkdtemp(prefix="hds-bench-gateway-suite-"))
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        print("real downloads: starting the suite (SQLite, filesystem blobs) ...", flush=True)
        suite = await bench_dlx.start_suite(stack, work, db="sqlite", backend="fs")
        gateway = suite.gateway_url
        count = max(1, round(args.real_gib * GIB / (REAL_ROWS * REAL_ROWS * 2)))
        email, password = "bench-patient@example.org", secrets.token_urlsafe(18)
        async with httpx.AsyncClient(
            base_url=gateway, timeout=httpx.Timeout(600, connect=10)
        ) as api:
            await bench_dlx.register_patient(api, suite.var / "outbox", email, password)
            study = await bench_dlx.publish(
                api, suite.credentials, count=count, rows=REAL_ROWS, seed=3, name="study"
            )
            print(
                f"  published {count} instances of {REAL_ROWS}x{REAL_ROWS} "
                f"({study.dicom_bytes / GIB:.2f} GiB) in {study.seconds:.0f} s",
                flush=True,
            )
            account = await bench_dlx.login(api, {"email": email, "password": password})
            imported = await api.post(
                "/codes/v1/import",
                json={"code": study.code, "birth_date": bench_dlx.BIRTH_DATE},
                headers=account,
            )
            imported.raise_for_status()
            studies = await api.get("/storage/v1/studies", headers=account)
            studies.raise_for_status()
            study_id = studies.json()[0]["id"]
            dlx = bench_dlx.bearer(await bench_dlx.dlx_token(gateway, study.code))
        pids = suite.pids("storage", "dlx", "gateway")
        processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        downloads = (
            (
                "study archive from storage (account token)",
                suite.env["HDS_STORAGE_URL"],
                f"/storage/v1/studies/{study_id}/archive",
                account,
                ("storage",),
            ),
            (
                "DLX downloadall (DLX token)",
                suite.env["HDS_DLX_URL"],
                "/dlx/v1/downloadall",
                dlx,
                ("dlx", "storage"),
            ),
        )
        results = []
        for name, upstream, path, headers, serving in downloads:
            size = await asyncio.to_thread(content_length, upstream + path, headers)
            comparison = await asyncio.to_thread(
                functools.partial(
                    compare,
                    name,
                    straight_url=upstream + path,
                    through_url=gateway + path,
                    headers=headers,
                    size=size,
                    repeat=args.repeat,
                    upstreams={process: processes[process] for process in serving},
                    hop_name="gateway",
                    hop=processes["gateway"],
                    cores=cores,
                )
            )
            results.append(comparison)
        suite.check_alive()
        return results


NGINX_CONFIG = """\
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    upstream upstream {{ server 127.0.0.1:{upstream_port}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_buffer_size 256k;
            proxy_buffers 4 256k;
            proxy_busy_buffers_size 512k;
        }}
    }}
}}
"""


@contextmanager
def nginx_proxy(work: Path, upstream_port: int) -> Iterator[tuple[int, psutil.Process] | None]:
    """nginx in front of the plain upstream, as the reference hop; None without nginx."""
    nginx = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(path).exists()),
        None,
    )
    if nginx is None:
        yield None
        return
    port = free_port()
    config = work / "nginx.conf"
    config.write_text(NGINX_CONFIG.format(work=work, upstream_port=upstream_port, port=port))
    command = [nginx, "-c", str(config), "-p", str(work), "-e", str(work / "nginx-error.log")]
    # nginx has no /healthz of its own: started() waits for the upstream's, through it.
    with started(command, port, dict(os.environ)) as process:
        yield port, process


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--real-gib", type=float, default=1.0, help="size of the real study; 0 skips that part"
    )
    parser.add_argument("--size-mib", type=int, default=1024, help="plain upstream's download")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compare-clients", action="store_true")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cores = os.cpu_count() or 1
    print(f"cpu cores: {cores}, load average: {os.getloadavg()[0]:.2f}", flush=True)
    real = asyncio.run(measure_real(args, cores)) if args.real_gib > 0 else []
    for comparison in real:
        comparison.report()
    measure_hop(args, cores)


def measure_hop(args: argparse.Namespace, cores: int) -> None:
    """The plain upstream: the gateway's own cost per byte, nginx beside it, and latency."""
    from hds_common.testing.tokens import TestIssuer

    size = args.size_mib * MIB
    issuer = TestIssuer()
    token = issuer.mint("bench-account", ttl=3600)
    auth = {"Authorization": f"Bearer {token}"}
    workdir = Path(tempfile.mkdtemp(prefix="hds-bench-gateway-"))
    jwks_file = workdir / "jwks.json"
    jwks_file.write_text(json.dumps(issuer.jwks))
    upstream_port, gateway_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}"
    env = {
        **os.environ,
        "HDS_AUTH_URL": upstream,
        "HDS_CODES_URL": upstream,
        "HDS_STORAGE_URL": upstream,
        "HDS_DLX_URL": upstream,
        "HDS_JWT_ISSUER": issuer.issuer,
        "HDS_GATEWAY_PORT": str(gateway_port),
        "HDS_GATEWAY_RATE_LIMIT_API_PER_ADDRESS": "1000000000",
        "HDS_GATEWAY_RATE_LIMIT_API_PER_SUBJECT": "1000000000",
        "HDS_INTERNAL_SECRET": "bench-secret",
    }
    env.pop("HDS_GATEWAY_REDIS_URL", None)
    env.pop("REDIS_URL", None)
    upstream_command = [
        sys.executable, __file__, "upstream", str(upstream_port), str(jwks_file), str(size)
    ]  # fmt: skip
    gateway_command = [sys.executable, "-m", "hds_gateway", "serve"]
    plain = f"{args.size_mib} MiB from a plain upstream (bytes from memory)"
    with (
        started(upstream_command, upstream_port, env) as upstream_process,
        started(gateway_command, gateway_port, env) as gateway,
    ):
        baseline_rss = int(gateway.memory_info().rss)
        with PeakRss(gateway) as rss:
            through_gateway = compare(
                plain,
                straight_url=f"{upstream}{BLOB_PATH}",
                through_url=f"http://127.0.0.1:{gateway_port}{BLOB_PATH}",
                headers=auth,
                size=size,
                repeat=args.repeat,
                upstreams={"upstream": upstream_process},
                hop_name="gateway",
                hop=gateway,
                cores=cores,
            )
        through_nginx: Comparison | None = None
        with nginx_proxy(workdir, upstream_port) as nginx:
            if nginx is not None:
                port, nginx_process = nginx
                through_nginx = compare(
                    plain,
                    straight_url=f"{upstream}{BLOB_PATH}",
                    through_url=f"http://127.0.0.1:{port}{BLOB_PATH}",
                    headers={},
                    size=size,
                    repeat=args.repeat,
                    upstreams={"upstream": upstream_process},
                    hop_name="nginx",
                    hop=nginx_process,
                    cores=cores,
                )
        straight = latencies(upstream_port, auth, args.requests)
        through = latencies(gateway_port, auth, args.requests)

        hops: dict[str, Throughput] = {}
        if args.compare_clients:
            for kind in ("httpx", "aiohttp", "pump", "splice"):
                port = free_port()
                command = [sys.executable, __file__, "proxyhop", str(port), kind, upstream]
                if kind in ("pump", "splice"):
                    command = [sys.executable, __file__, kind, str(port), str(upstream_port)]
                with started(command, port, env) as hop:
                    hops[kind] = throughput(
                        f"http://127.0.0.1:{port}{BLOB_PATH}",
                        {},
                        size,
                        args.repeat,
                        {"upstream": upstream_process, "hop": hop},
                    )

    added = statistics.median(through) - statistics.median(straight)
    print("the hop's own cost:")
    through_gateway.report()
    if through_nginx is not None:
        print("the same through nginx (proxy_buffering off), the reference hop:")
        through_nginx.report()
    else:
        print("nginx (the reference hop): not measured, no nginx on the PATH (make bench-tools)")
    _, direct, proxied = through_gateway.runs[0]
    # Were the machine theirs alone, the processes could go no faster than their CPU time
    # per GB allows on this many cores: the ratio the per-byte costs leave room for.
    direct_bound, proxied_bound = cpu_bound(direct, cores), cpu_bound(proxied, cores)
    print(
        f"  CPU-bound estimate, shared cores: straight <= {direct_bound:.2f} GB/s, through <= "
        f"{proxied_bound:.2f} GB/s on {cores} cores: ratio <= {proxied_bound / direct_bound:.2f}"
    )
    print(
        f"  gateway RSS: {baseline_rss / MIB:.0f} MiB before, "
        f"{rss.peak / MIB:.0f} MiB peak during the downloads"
    )
    print(f"small JSON GET ({args.requests} requests, one keep-alive connection):")
    for name, samples in (("straight", straight), ("through the gateway", through)):
        quantiles = statistics.quantiles(samples, n=100)
        print(
            f"  {name:<27} median {statistics.median(samples):.3f} ms, "
            f"p90 {quantiles[89]:.3f} ms, p99 {quantiles[98]:.3f} ms"
        )
    verdict = "ok" if added < TARGET_ADDED_MS else "ABOVE TARGET"
    print(f"  added median latency        {added:.3f} ms   (target < {TARGET_ADDED_MS}: {verdict})")
    if hops:
        print(f"other hops, same download (best of {args.repeat}):")
    names = {
        "httpx": "FastAPI hop, httpx streaming",
        "aiohttp": "FastAPI hop, aiohttp streaming",
        "pump": "uvloop TCP byte pump (no HTTP)",
        "splice": "splice pump (no HTTP, 0 copy)",
    }
    for kind, hop in hops.items():
        print(
            f"  {names[kind]:<31} {hop.best / 1e9:6.2f} GB/s (ratio {hop.best / direct.best:.2f},"
            f" CPU-bound ratio <= {cpu_bound(hop, cores) / direct_bound:.2f}); CPU per GB: "
            f"{hop.cpu()}"
        )
    shutil.rmtree(workdir, ignore_errors=True)


def cpu_bound(throughput: Throughput, cores: int) -> float:
    """GB/s the measured CPU seconds per GB allow: no process faster than one core, all of
    them together no faster than every core."""
    costs = throughput.cpu_per_gb.values()
    return min(cores / sum(costs), 1 / max(costs))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "upstream":
        run_upstream(int(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "proxyhop":
        run_proxy_hop(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif len(sys.argv) > 1 and sys.argv[1] == "pump":
        run_pump(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "splice":
        run_splice_pump(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        run_client(sys.argv[2], sys.argv[3])
    else:
        main()
