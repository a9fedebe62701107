"""The streaming proxy: request bodies stream to the upstream, response bodies stream back,
neither is ever held whole.

Upstream calls use aiohttp's client: through one proxy hop it carried about three times
what httpx did on this machine class (DESIGN.md, bench/bench_gateway.py). Backpressure
comes for free on both sides: uvicorn stops reading the client's socket while the upstream
is slower, the proxy stops reading the upstream's socket while the client is slower.

Long bodies with a Content-Length (downloads of objects and archives) skip aiohttp once the
headers are in: the proxy reads the rest from the upstream's socket itself
(:mod:`hds_common.direct_body`), in pieces of up to ``proxy_buffer_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import structlog
from multidict import CIMultiDict
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send
from yarl import URL

from hds_common.direct_body import DirectBody, take_over_body
from hds_gateway.errors import (
    BodyTooLarge,
    ClientDisconnected,
    InvalidContentLength,
    UpstreamFailed,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from hds_gateway.forwarding.headers import upstream_response_headers

__all__ = ["UpstreamPool", "UpstreamRequest", "UpstreamResponse", "send_upstream"]

log = structlog.get_logger("hds.gateway.proxy")


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class UpstreamPool:
    """One pooled aiohttp session per upstream, created in the lifespan."""

    def __init__(
        self,
        urls: Mapping[str, str],
        *,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
        keepalive: float,
        buffer_size: int,
    ) -> None:
        self.urls = dict(urls)
        self.read_timeout = read_timeout
        # The largest piece read from an upstream at once (direct reads).
        self.read_size = buffer_size
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_read=read_timeout)
        self._sessions = {
            name: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=max_connections, keepalive_timeout=keepalive, ttl_dns_cache=60
                ),
                timeout=timeout,
                # Never keep one client's cookies for another.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Bodies pass as they are: no decompression, no added headers.
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
                # Reading from the upstream pauses above twice this (backpressure).
                read_bufsize=buffer_size,
                raise_for_status=False,
            )
            for name in urls
        }

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()

    def session(self, upstream: str) -> aiohttp.ClientSession:
        return self._sessions[upstream]


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise InvalidContentLength() from None
            if length < 0:
                raise InvalidContentLength()
            return length
    return None


def _is_chunked(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in headers
    )


class _RequestBody:
    """The client's body as it arrives, counted against the route's limit."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self.received = 0
        self.exceeded = False
        self.client_gone = False
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise _ClientGone
            body: bytes = message.get("body", b"")
            self.received += len(body)
            if self.received > self._limit:
                self.exceeded = True
                raise _BodyTooLarge
            if body:
                yield body
            if not message.get("more_body", False):
                self.complete = True
                return


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """What to send where: the raw (still percent-encoded) path and query are forwarded
    as they came, so the upstream sees exactly the client's URL."""

    upstream: str
    method: str
    raw_path: str
    query: str
    headers: CIMultiDict[str]
    body_limit: int


async def send_upstream(
    pool: UpstreamPool, request: UpstreamRequest, scope: Scope, receive: Receive
) -> UpstreamResponse:
    """Send ``request`` with the client's streamed body; the answer once its headers are in.
    Connect failure → 502, no answer in time → 504, body over the limit → 413."""
    raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
    declared = _content_length(raw_headers)
    if declared is not None and declared > request.body_limit:
        raise BodyTooLarge(request.body_limit)
    body: _RequestBody | None = None
    if (declared or 0) > 0 or (declared is None and _is_chunked(raw_headers)):
        body = _RequestBody(receive, request.body_limit)
    target = pool.urls[request.upstream] + request.raw_path
    if request.query:
        target += "?" + request.query
    try:
        upstream = await pool.session(request.upstream).request(
            request.method,
            URL(target, encoded=True),
            headers=request.headers,
            data=body.chunks() if body is not None else None,
            allow_redirects=False,
        )
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise _translate(exc, request, body) from None
    return UpstreamResponse(
        upstream,
        body=body,
        head=request.method == "HEAD",
        read_size=pool.read_size,
        read_timeout=pool.read_timeout,
    )


def _translate(
    exc: BaseException, request: UpstreamRequest, body: _RequestBody | None
) -> Exception:
    if body is not None and body.exceeded:
        return BodyTooLarge(request.body_limit)
    if body is not None and body.client_gone:
        return ClientDisconnected()
    name = request.upstream
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ConnectionTimeoutError
    ):
        log.warning("upstream_unreachable", upstream=name, error=str(exc))
        return UpstreamUnreachable(name)
    if isinstance(exc, TimeoutError):
        log.warning("upstream_timeout", upstream=name, error=type(exc).__name__)
        return UpstreamTimeout(name)
    # Only the exception's type: some messages quote the URL, and URLs may carry a code.
    log.warning("upstream_failed", upstream=name, error=type(exc).__name__)
    return UpstreamFailed(name)


class UpstreamResponse(Response):
    """The upstream's answer, streamed to the client chunk by chunk as it arrives."""

    def __init__(
        self,
        upstream: aiohttp.ClientResponse,
        *,
        body: _RequestBody | None,
        head: bool,
        read_size: int,
        read_timeout: float,
    ) -> None:
        super().__init__(status_code=upstream.status)
        self.raw_headers = upstream_response_headers(upstream.raw_headers)
        self._upstream = upstream
        self._body = body
        self._head = head
        self._read_size = read_size
        self._read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # noqa: ARG002
        upstream = self._upstream
        complete = False
        direct: DirectBody | None = None
        # uvicorn drops writes to a vanished client silently, so watch for the disconnect
        # to stop pulling from the upstream. Only once the request body is consumed: the
        # upload may still be reading ``receive``.
        disconnected = asyncio.Event()
        watcher: asyncio.Task[None] | None = None
        if self._body is None or self._body.complete:
            watcher = asyncio.create_task(_watch_disconnect(receive, disconnected))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            direct = self._direct_body()
            pieces = direct.pieces() if direct is not None else _aiohttp_pieces(upstream)
            async with contextlib.aclosing(pieces):
                async for piece in pieces:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                    if disconnected.is_set():
                        return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            complete = True
        except (OSError, aiohttp.ClientError) as exc:
            # Too late for a 502/504: the status line is out. Cutting the connection short
            # tells the client the body is incomplete. (OSError covers the direct reads'
            # resets and TimeoutError, aiohttp's errors the rest.)
            log.warning(
                "upstream_failed_mid_response", status=self.status_code, error=type(exc).__name__
            )
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if direct is not None:
                direct.close()
            if complete and direct is None:
                upstream.release()
            else:
                upstream.close()

    def _direct_body(self) -> DirectBody | None:
        """The rest of a long body, read from the upstream's socket; None where aiohttp
        keeps reading it: HEAD has no body, and while the client's upload is still being
        forwarded aiohttp is writing to this connection."""
        if self._head or self._body is not None:
            return None
        return take_over_body(
            self._upstream, read_size=self._read_size, read_timeout=self._read_timeout
        )


async def _aiohttp_pieces(upstream: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    """Each piece as the socket delivered it: joining pieces into larger chunks costs a
    copy, and copies are what bounds a Python proxy's throughput.

    Not ``iter_chunks()``: bodiless answers (HEAD, 204, 304, Content-Length 0) share
    aiohttp's one ``EMPTY_PAYLOAD``, whose ``readchunk()`` reports the end only the first
    time in a process and ``(b"", True)`` forever after, without ever awaiting anything;
    iterating it froze the event loop from the second bodiless answer on."""
    content = upstream.content
    while True:
        chunk, _ = await content.readchunk()
        if chunk:
            yield chunk
        elif content.at_eof():
            return


async def _watch_disconnect(receive: Receive, disconnected: asyncio.Event) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            disconnected.set()
            return
