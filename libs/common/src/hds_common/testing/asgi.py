"""Run several services in one test process and let them call each other.

``ServiceRouterTransport`` is an httpx transport that hands each request to the ASGI app
registered for its host, so ``http://storage.internal/...`` reaches the storage app without
a socket. Production code is unchanged: each service takes the transport in
``create_app(settings, transport=...)`` and builds its clients with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

__all__ = ["ServiceRouterTransport", "running"]


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
