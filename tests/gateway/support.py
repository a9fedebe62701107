"""Helpers of the gateway tests: the gateway under test, served by uvicorn on a loopback
port, in front of the upstream stand-ins (support_standin.py), and the requests tests send
it."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
import uvloop
from fastapi import FastAPI

from hds_common.settings import SuiteSettings
from hds_common.testing.asgi import serving
from hds_common.testing.tokens import TestIssuer
from hds_gateway.config import Settings
from hds_gateway.main import create_app
from tests.gateway.support_standin import UpstreamState

REDIS_URL = "redis://127.0.0.1:6379/0"
SPA_URL = "http://spa.test:5173"


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) on a free loopback port; yield its base URL."""
    # proxy_headers off as in production (`python -m hds_gateway serve`): the gateway
    # interprets X-Forwarded-* itself.
    async with serving(app, proxy_headers=False, timeout_graceful_shutdown=5) as url:
        yield url


@asynccontextmanager
async def serve_on_uvloop(app: FastAPI) -> AsyncIterator[str]:
    """Like :func:`serve`, but on a uvloop event loop in a thread of its own, as
    ``python -m hds_gateway serve`` runs: its sockets and transports are uvloop's."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    stopped = threading.Event()

    def run() -> None:
        try:
            uvloop.run(server.serve(sockets=[sock]))
        finally:
            stopped.set()

    serving = asyncio.create_task(asyncio.to_thread(run))
    while not server.started:
        if stopped.is_set():
            await serving
            raise RuntimeError("server stopped during startup")
        await asyncio.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


@dataclass
class Upstreams:
    issuer: TestIssuer
    # Further keys the auth stand-in publishes (key rotation).
    extra_keys: list[dict[str, Any]]
    states: dict[str, UpstreamState]
    urls: dict[str, str]

    def suite(self, **overrides: str) -> SuiteSettings:
        urls = {f"{name}_url": url for name, url in self.urls.items()}
        urls.update(overrides)
        return SuiteSettings(jwt_issuer=self.issuer.issuer, **urls)  # type: ignore[arg-type]


def gateway_settings(upstreams: Upstreams, **overrides: Any) -> Settings:
    """Settings pointing at the stand-ins, rate limits off unless a test turns them on."""
    suite = overrides.pop("suite", None) or upstreams.suite()
    values: dict[str, Any] = {
        "spa_url": SPA_URL,
        "rate_limit_auth_per_address": 0,
        "rate_limit_api_per_address": 0,
        "rate_limit_api_per_subject": 0,
        "jwks_min_refresh_seconds": 3600,
        "redis_url": None,
        "suite": suite,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_gateway(
    settings: Settings, *, on_uvloop: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway served on a loopback port (on the tests' event loop, or on a uvloop
    loop of its own), and a client for it."""
    async with (
        (serve_on_uvloop if on_uvloop else serve)(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, timeout=10.0, verify=False) as client,
    ):
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def header_values(seen: dict[str, Any], name: str) -> list[str]:
    """Values of header ``name`` in an echo answer."""
    return [value for key, value in seen["headers"] if key == name.lower()]


async def raw_request(
    base_url: str, target: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, bytes]:
    """Send ``target`` byte for byte (HTTP clients normalise dot segments away); the
    status and the body of the answer."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body
