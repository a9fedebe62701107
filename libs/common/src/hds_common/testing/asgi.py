"""Run several services in one test process and let them call each other.

``ServiceRouterTransport`` is an httpx transport that hands each request to the ASGI app
registered for its host, so ``http://storage.internal/...`` reaches the storage app without
a socket. Production code is unchanged: each service takes the transport in
``create_app(settings, transport=...)`` and builds its clients with it. Where a test needs
real sockets (streaming, other processes calling in), :func:`serving` runs an app with
uvicorn on a loopback port of the test's event loop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import httpx
import uvicorn
from fastapi import FastAPI

__all__ = ["ServiceRouterTransport", "running", "serving"]


class ServiceRouterTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._apps: dict[str, httpx.ASGITransport] = {}

    def register(self, host: str, app: FastAPI) -> None:
        self._apps[host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self._apps.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no test app for host {request.url.host}", request=request)
        return await transport.handle_async_request(request)


@asynccontextmanager
async def running(*apps: FastAPI) -> AsyncIterator[None]:
    """Run the lifespans of ``apps`` (in order) for the duration of the block."""
    async with AsyncExitStack() as stack:
        for app in apps:
            await stack.enter_async_context(app.router.lifespan_context(app))
        yield


@asynccontextmanager
async def serving(
    app: Any, *, lifespan: Literal["on", "off"] = "on", **config: Any
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yield its base URL. ``config``:
    further ``uvicorn.Config`` options (``http="httptools"``, ``proxy_headers=False``...)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan=lifespan, log_config=None, access_log=False, **config)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped during startup")
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
