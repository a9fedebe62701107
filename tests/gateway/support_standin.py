"""The stand-ins for the gateway's upstreams: each a real app served by uvicorn on its own
loopback port (support.py), so the proxy is exercised over real HTTP.

The stand-ins answer like the real services would at the HTTP level: an echo of what they
received (method, path, headers, body digest), a JWKS from a :class:`TestIssuer`, streams
gated by events, a slow route, ranges, long bodies (the proxy's direct reads) that arrive
whole, cut short, stalled or endless, and a readiness flag.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import create_model
from starlette.types import Receive, Scope, Send

from hds_common.app import create_service_app
from hds_common.routing import ANY_TEXT

__all__ = [
    "BLOB",
    "ETAG",
    "LOCKSTEP_HEAD",
    "LOCKSTEP_PIECE",
    "LOCKSTEP_STEPS",
    "LONG_BODY",
    "UpstreamState",
    "stand_in",
]


@dataclass
class UpstreamState:
    """What a stand-in saw and how it should behave; tests read and steer it."""

    name: str
    ready: bool = True
    requests: list[dict[str, Any]] = field(default_factory=list)
    jwks_fetches: int = 0
    openapi_fetches: int = 0
    # Stream gates: the stand-in waits on these between chunks.
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    stream_closed: asyncio.Event = field(default_factory=asyncio.Event)
    release_slow: asyncio.Event = field(default_factory=asyncio.Event)
    # Client port of the connection each long-body request came in on.
    long_body_ports: list[int] = field(default_factory=list)

    def gate(self, key: str) -> asyncio.Event:
        return self.gates.setdefault(key, asyncio.Event())


BLOB = bytes(range(256)) * 4096  # 1 MiB with a recognisable pattern
ETAG = '"blob-v1"'


# Long enough for the gateway's direct reads (at least 4 MiB), not a multiple of the piece size.
LONG_BODY = random.Random(19455).randbytes(24 * 1024 * 1024 + 12345)
_PIECE = 1024 * 1024
# ``lockstep``: 5 MiB at once, then LOCKSTEP_STEPS pieces of LOCKSTEP_PIECE bytes, piece i
# only once the gate ``lockstep-{i}`` is set.
LOCKSTEP_HEAD = 5 * _PIECE
LOCKSTEP_STEPS = 6
LOCKSTEP_PIECE = 1000


class LongBody(Response):
    """``LONG_BODY`` (or the requested range of it) with its Content-Length, sent in 1 MiB
    pieces. ``mode``: ``whole``; ``cut`` (the connection closes after half the body);
    ``stall`` (waits for ``release_slow`` after 6 MiB); ``endless`` (a Content-Length of
    1 TiB, sent until the gateway hangs up, which sets ``stream_closed``); ``lockstep``
    (small pieces at the end, each held back until the client has what came before)."""

    def __init__(self, state: UpstreamState, mode: str) -> None:
        super().__init__()
        self._state = state
        self._mode = mode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._state.long_body_ports.append(scope["client"][1])
        body, status = LONG_BODY, 200
        headers = [(b"accept-ranges", b"bytes"), (b"content-type", b"application/octet-stream")]
        spec = dict(scope["headers"]).get(b"range")
        if spec is not None and self._mode == "whole":
            first, _, last = spec.decode().removeprefix("bytes=").partition("-")
            start, end = int(first), int(last or len(LONG_BODY) - 1)
            body, status = LONG_BODY[start : end + 1], 206
            headers.append((b"content-range", f"bytes {start}-{end}/{len(LONG_BODY)}".encode()))
        if self._mode == "lockstep":
            body = LONG_BODY[: LOCKSTEP_HEAD + LOCKSTEP_STEPS * LOCKSTEP_PIECE]
        length = 1 << 40 if self._mode == "endless" else len(body)
        headers.append((b"content-length", str(length).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if self._mode == "endless":
            await self._endless(receive, send)
            return
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        if self._mode == "lockstep":
            await self._lockstep(body, send)
            return
        for offset in range(0, len(body), _PIECE):
            if self._mode == "cut" and offset >= len(body) // 2:
                return  # uvicorn closes the connection of an unfinished response
            if self._mode == "stall" and offset == 6 * _PIECE:
                await self._state.release_slow.wait()
            piece = body[offset : offset + _PIECE]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _lockstep(self, body: bytes, send: Send) -> None:
        await send({"type": "http.response.body", "body": body[:LOCKSTEP_HEAD], "more_body": True})
        for step in range(LOCKSTEP_STEPS):
            await self._state.gate(f"lockstep-{step}").wait()
            start = LOCKSTEP_HEAD + step * LOCKSTEP_PIECE
            piece = body[start : start + LOCKSTEP_PIECE]
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _endless(self, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            while not gone.is_set():
                body = LONG_BODY[:_PIECE]
                await send({"type": "http.response.body", "body": body, "more_body": True})
                await asyncio.sleep(0)
        finally:
            watcher.cancel()
            self._state.stream_closed.set()


class _EndlessResponse(Response):
    """Sends 1 MiB chunks until the peer (the gateway) hangs up, then says so."""

    def __init__(self, state: UpstreamState) -> None:
        super().__init__(media_type="application/octet-stream")
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while not gone.is_set():
                await send({"type": "http.response.body", "body": BLOB, "more_body": True})
                await asyncio.sleep(0)
        finally:
            watcher.cancel()
            self._state.stream_closed.set()


# Two services with a schema of the same name but different content.
CodesItem = create_model("Item", code=(str, ...))
StorageItem = create_model("Item", size=(int, ...))


def stand_in(state: UpstreamState, issuer_keys: Callable[[], dict[str, Any]]) -> FastAPI:
    router = APIRouter()

    if state.name == "auth":

        @router.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            state.jwks_fetches += 1
            return issuer_keys()

    if state.name == "codes":

        @router.get("/codes/v1/items/{item_id}", response_model=CodesItem)
        async def code_item(item_id: str) -> Any:
            return CodesItem(code=item_id)

        @router.post("/internal/v1/validate")
        async def validate() -> dict[str, str]:
            return {"internal": "never routed"}

    if state.name == "dlx":

        @router.get("/dlx/v1/token/{value}")
        async def token(value: str, request: Request) -> dict[str, Any]:
            state.requests.append({"path": request.scope["path"], "value": value})
            # The shape of DLX TFA questions; the value is echoed to check what arrived.
            return {
                "value": value,
                "questions": [{"questionId": "birthdate", "type": "date"}],
                "query": request.scope["query_string"].decode(),
            }

    if state.name == "storage":

        @router.get("/storage/v1/items/{item_id}", response_model=StorageItem)
        async def storage_item(item_id: str) -> Any:
            return StorageItem(size=len(item_id))

        @router.get("/storage/v1/gated")
        async def gated() -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                try:
                    yield b"first-chunk;"
                    await state.gate("response").wait()
                    yield b"second-chunk"
                finally:
                    state.stream_closed.set()

            return StreamingResponse(chunks(), media_type="application/octet-stream")

        @router.get("/storage/v1/endless")
        async def endless() -> Response:
            return _EndlessResponse(state)

        @router.post("/storage/v1/gated-upload")
        async def gated_upload(request: Request) -> dict[str, Any]:
            received = b""
            async for chunk in request.stream():
                received += chunk
                if received.startswith(b"part-one;"):
                    state.gate("upload").set()
            return {"received": received.decode()}

        @router.get("/storage/v1/stalls")
        async def stalls() -> StreamingResponse:
            async def chunks() -> AsyncIterator[bytes]:
                yield b"x" * 100
                await state.release_slow.wait()
                yield b"y" * 100

            return StreamingResponse(chunks(), headers={"Content-Length": "200"})

        @router.get("/storage/v1/slow")
        async def slow() -> dict[str, str]:
            await state.release_slow.wait()
            return {"status": "late"}

        @router.get("/storage/v1/blob")
        async def blob(request: Request) -> Response:
            headers = {
                "Accept-Ranges": "bytes",
                "ETag": ETAG,
                "Content-Disposition": 'attachment; filename="blob.bin"',
            }
            spec = request.headers.get("range")
            if_range = request.headers.get("if-range")
            if spec and (if_range is None or if_range == ETAG):
                start_text, _, end_text = spec.removeprefix("bytes=").partition("-")
                start, end = int(start_text), int(end_text or len(BLOB) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(BLOB)}"
                return Response(BLOB[start : end + 1], status_code=206, headers=headers)
            return Response(BLOB, headers=headers, media_type="application/octet-stream")

        @router.api_route(
            "/storage/v1/long/{mode}", methods=["GET", "HEAD"], include_in_schema=False
        )
        async def long_body(mode: str) -> Response:
            return LongBody(state, mode)

        @router.get("/storage/v1/empty/{status}")
        async def empty(status: int) -> Response:
            return Response(status_code=status, headers={"ETag": ETAG})

        @router.get("/storage/v1/hop-by-hop")
        async def hop_by_hop() -> Response:
            return Response(
                b"ok",
                headers={
                    "Connection": "X-Private-Hop",
                    "X-Private-Hop": "secret",
                    "Keep-Alive": "timeout=5",
                    "Proxy-Authenticate": "Basic",
                    "Upgrade": "h2c",
                    "X-End-To-End": "kept",
                },
            )

        @router.get("/storage/v1/set-cookie")
        async def set_cookie() -> Response:
            response = JSONResponse({"set": True})
            response.set_cookie("session", "alice", path="/")
            return response

    @router.api_route(
        f"/{{path:{ANY_TEXT}}}",  # echoes any path, line breaks included
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        include_in_schema=False,
    )
    async def echo(request: Request) -> JSONResponse:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
        seen = {
            "service": state.name,
            "method": request.method,
            "path": request.scope["path"],
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in request.scope["headers"]],
            "body_size": size,
            "body_sha256": digest.hexdigest(),
        }
        state.requests.append(seen)
        return JSONResponse(seen)

    async def ready() -> None:
        if not state.ready:
            raise RuntimeError("stand-in told to be unready")

    app = create_service_app(
        service=state.name,
        title=f"HDS {state.name} stand-in",
        description=f"A stand-in for the {state.name} service.",
        readiness=lambda _: {"self": ready},
        routers=[router],
    )

    @app.middleware("http")
    async def count_openapi(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path == "/openapi.json":
            state.openapi_fetches += 1
        return await call_next(request)

    return app
