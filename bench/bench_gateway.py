"""Gateway benchmark: bulk throughput and added latency of the proxy hop.

    python bench/bench_gateway.py [--size-mib 1024] [--requests 2000] [--compare-clients]

Starts, as separate processes on loopback, a plain upstream (uvicorn serving bytes from
memory, a small JSON answer and a JWKS) and the gateway (``python -m hds_gateway serve``)
in front of it. Then, from this process and curl (other processes again):

- throughput: a SIZE MiB download straight from the upstream and through the gateway
  (with a verified bearer token), best of ``--repeat`` runs each; the ratio is the figure
  (target >= 0.8); the gateway's peak RSS during the download shows it does not buffer;
- latency: ``--requests`` small JSON GETs over one keep-alive connection, straight and
  through the gateway (token verified, rate limits counted, access log written); the
  difference of the medians is the added latency (target < 2 ms).

``--compare-clients`` also measures a minimal FastAPI proxy hop using httpx streaming, one
using aiohttp's client (the measurement behind the choice of aiohttp for the bulk path), a
bare uvloop TCP byte pump (the floor of any Python hop that copies the bytes), and a pump
that moves the download with ``os.splice`` (zero copy in the hop). CPU seconds per GB are
printed for the client (curl), the upstream, the gateway and each hop: unlike GB/s they
hardly depend on what else the machine is running. Client, upstream and hop share the
machine's cores, so on a machine with few cores the hop's CPU time per GB is what bounds
the ratio, not its code path alone.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
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
from pathlib import Path
from typing import Any

import psutil
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

MIB = 1024 * 1024
TARGET_RATIO = 0.8
TARGET_ADDED_MS = 2.0
BLOB_PATH = "/storage/v1/objects/blob"
PING_PATH = "/storage/v1/ping"

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    times = process.cpu_times()
    return float(times.user + times.system)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def download(url: str, headers: dict[str, str], size: int) -> float:
    """Seconds for one download of ``url`` by a separate client process (curl if present)."""
    curl = shutil.which("curl")
    if curl:
        command = [curl, "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}"]
        for name, value in headers.items():
            command += ["-H", f"{name}: {value}"]
        output = subprocess.run(
            [*command, url], check=True, capture_output=True, text=True
        ).stdout.split()
        received, seconds = int(output[0]), float(output[1])
    else:
        output = subprocess.run(
            [sys.executable, __file__, "client", url, json.dumps(headers)],
            check=True,
            capture_output=True,
            text=True,
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
    """Best bytes per second of ``repeat`` downloads, and CPU seconds per GB of the client
    and of the processes serving them."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        size: int,
        repeat: int,
        servers: dict[str, psutil.Process],
    ) -> None:
        gigabytes = size * repeat / 1e9
        client = children_cpu_seconds()
        served = {name: cpu_seconds(process) for name, process in servers.items()}
        self.best = max(size / download(url, headers, size) for _ in range(repeat))
        self.cpu_per_gb = {"client": (children_cpu_seconds() - client) / gigabytes}
        for name, process in servers.items():
            self.cpu_per_gb[name] = (cpu_seconds(process) - served[name]) / gigabytes

    def cpu(self) -> str:
        return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.cpu_per_gb.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--compare-clients", action="store_true")
    args = parser.parse_args()

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
    cores = os.cpu_count() or 1
    print(f"cpu cores: {cores}, load average: {os.getloadavg()[0]:.2f}")
    with (
        started(upstream_command, upstream_port, env) as upstream_process,
        started(gateway_command, gateway_port, env) as gateway,
    ):
        direct = Throughput(
            f"{upstream}{BLOB_PATH}", auth, size, args.repeat, {"upstream": upstream_process}
        )
        baseline_rss = int(gateway.memory_info().rss)
        with PeakRss(gateway) as rss:
            proxied = Throughput(
                f"http://127.0.0.1:{gateway_port}{BLOB_PATH}",
                auth,
                size,
                args.repeat,
                {"upstream": upstream_process, "gateway": gateway},
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
                    hops[kind] = Throughput(
                        f"http://127.0.0.1:{port}{BLOB_PATH}",
                        {},
                        size,
                        args.repeat,
                        {"upstream": upstream_process, "hop": hop},
                    )

    ratio = proxied.best / direct.best
    added = statistics.median(through) - statistics.median(straight)
    print(f"download of {args.size_mib} MiB (best of {args.repeat}):")
    print(f"  straight from the upstream  {direct.best / 1e9:6.2f} GB/s")
    print(f"  through the gateway         {proxied.best / 1e9:6.2f} GB/s")
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"  ratio                       {ratio:6.2f}   (target >= {TARGET_RATIO}: {verdict})")
    print(f"  CPU per GB, straight        {direct.cpu()}")
    print(f"  CPU per GB, through         {proxied.cpu()}")
    # Were the machine theirs alone, the processes could go no faster than their CPU time
    # per GB allows on this many cores: the ratio the per-byte costs leave room for.
    direct_bound, proxied_bound = cpu_bound(direct, cores), cpu_bound(proxied, cores)
    print(
        f"  CPU-bound estimate          straight <= {direct_bound:.2f} GB/s, through <= "
        f"{proxied_bound:.2f} GB/s on {cores} cores: ratio <= {proxied_bound / direct_bound:.2f}"
    )
    print(
        f"  gateway RSS                 {baseline_rss / MIB:.0f} MiB before, "
        f"{rss.peak / MIB:.0f} MiB peak during"
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
