"""The limits every service port enforces, at the socket and at the ASGI level.

uvicorn closes idle keep-alive connections, but a connection that has sent only part of
its request headers stays open for ever, and it counts no connections at all: a few
thousand half-open sockets (slowloris) exhaust the process. Here:

* the HTTP protocol closes a connection that has not sent complete request headers within
  ``header_timeout`` seconds, counted from its opening or from the end of its previous
  response, and one whose request body stalls: no byte for ``body_idle_timeout`` seconds
  while the server is reading (a paused read, or a client waiting for 100-continue,
  does not count);
* beyond ``max_connections`` open connections, the oldest one still waiting for headers
  (or idle between requests) is dropped to make room; when every connection is busy with a
  request, the newcomer gets a 503 and is closed;
* beyond ``max_concurrent_requests`` requests in flight, further requests get a 503
  problem+json with ``Retry-After`` (``/healthz`` and ``/metrics`` always answer);
* request bodies above ``max_body_bytes`` get a 413 problem+json, from ``Content-Length``
  up front and by counting while a chunked body streams (routes that stream large uploads
  bound them themselves and are exempt).
"""

from __future__ import annotations

import asyncio
import json
import re
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hds_common.errors import PROBLEM_CONTENT_TYPE, PayloadTooLarge, problem_type
from hds_common.request_context import current_request_id
from hds_common.settings import SuiteSettings

__all__ = [
    "BodyLimitMiddleware",
    "ConcurrencyLimitMiddleware",
    "HttpLimits",
    "guarded_protocol",
    "raise_open_file_limit",
]

log = structlog.get_logger("hds.serving")

# Always answered, even at the concurrency limit: liveness and scraping must not fail
# because the process is busy.
_ALWAYS_SERVED = frozenset({"/healthz", "/metrics"})
# File descriptors kept for everything else a process opens (database, blobs, upstreams).
_SPARE_DESCRIPTORS = 256


@dataclass(frozen=True, slots=True)
class HttpLimits:
    header_timeout: float = 10.0
    body_idle_timeout: float = 60.0
    keepalive_timeout: int = 5
    max_connections: int = 4096
    max_concurrent_requests: int = 1024
    max_body_bytes: int = 1024 * 1024
    busy_retry_after_seconds: int = 1

    @classmethod
    def from_settings(cls, suite: SuiteSettings) -> HttpLimits:
        return cls(
            header_timeout=suite.http_header_timeout_seconds,
            body_idle_timeout=suite.http_body_idle_timeout_seconds,
            keepalive_timeout=suite.http_keepalive_timeout_seconds,
            max_connections=suite.http_max_connections,
            max_concurrent_requests=suite.http_max_concurrent_requests,
            max_body_bytes=suite.http_max_body_bytes,
        )


def raise_open_file_limit(max_connections: int) -> int:
    """Raise the soft limit of open files as far as ``max_connections`` needs (up to the
    hard limit) and return the number of connections the limit leaves room for: beyond
    it, ``accept`` would fail and the port would stop answering altogether."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_connections
    room = max(1, soft - _SPARE_DESCRIPTORS)
    if room < max_connections:
        log.warning("max_connections_lowered", wanted=max_connections, open_file_limit=soft)
    return min(max_connections, room)


_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: " + PROBLEM_CONTENT_TYPE.encode() + b"\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


def _busy_bytes() -> bytes:
    body = json.dumps(
        {
            "type": problem_type("too-many-connections"),
            "title": "Service unavailable",
            "status": 503,
            "detail": "the server holds as many connections as it accepts; retry shortly",
        }
    ).encode()
    return _BUSY_RESPONSE % (len(body), body)


def guarded_protocol(limits: HttpLimits, *, max_connections: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a header-read timeout and a connection limit that
    sheds waiting connections first (one class per server: the waiting set is shared)."""

    busy = _busy_bytes()

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        # Connections waiting for request headers (new, or idle between requests), oldest
        # first: the ones dropped when the limit is reached.
        waiting: ClassVar[dict[GuardedHttpToolsProtocol, None]] = {}
        _header_timer: asyncio.TimerHandle | None = None
        _body_timer: asyncio.TimerHandle | None = None
        _body_seen_at = 0.0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            if len(self.connections) > max_connections:
                oldest = next(iter(self.waiting), None)
                if oldest is None:
                    # Every connection is in a request: refuse this one, clearly.
                    self.transport.write(busy)
                    self.transport.close()
                    return
                oldest._drop()
            self._await_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_arrived()
            self._body_arrived()
            super().connection_lost(exc)

        def on_headers_complete(self) -> None:
            self._headers_arrived()
            super().on_headers_complete()
            # Cancelled at once by on_message_complete when there is no body.
            self._await_body()

        def on_body(self, body: bytes) -> None:
            super().on_body(body)
            # No new timer per chunk: the running one looks at this when it fires.
            self._body_seen_at = self.loop.time()

        def on_message_complete(self) -> None:
            self._body_arrived()
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # Idle again (no pipelined request was waiting): the next request's headers
            # are due within the timeout too, whatever the keep-alive does.
            if self.timeout_keep_alive_task is not None and not self.transport.is_closing():
                self._await_headers()

        def _await_headers(self) -> None:
            self._headers_arrived()
            self.waiting[self] = None
            self._header_timer = self.loop.call_later(limits.header_timeout, self._drop)

        def _headers_arrived(self) -> None:
            self.waiting.pop(self, None)
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _await_body(self) -> None:
            self._body_arrived()
            self._body_seen_at = self.loop.time()
            self._body_timer = self.loop.call_later(limits.body_idle_timeout, self._body_stalled)

        def _body_arrived(self) -> None:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

        def _body_stalled(self) -> None:
            self._body_timer = None
            cycle = self.cycle
            if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
                # The server is not asking for bytes: the client is not late.
                self._await_body()
                return
            idle = self.loop.time() - self._body_seen_at
            if idle < limits.body_idle_timeout:
                self._body_timer = self.loop.call_later(
                    limits.body_idle_timeout - idle, self._body_stalled
                )
                return
            self._drop()

        def _drop(self) -> None:
            self._headers_arrived()
            self._body_arrived()
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpToolsProtocol


async def _send_problem(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    body.setdefault("status", status)
    request_id = current_request_id()
    if request_id:
        body.setdefault("request_id", request_id)
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class ConcurrencyLimitMiddleware:
    """At most ``limit`` requests in flight per process; more get 503 + Retry-After."""

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_seconds: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = str(retry_after_seconds).encode()
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in _ALWAYS_SERVED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await _send_problem(
                send,
                503,
                {
                    "type": problem_type("too-many-requests-in-flight"),
                    "title": "Service unavailable",
                    "detail": "the server is handling as many requests as it accepts; "
                    "retry shortly",
                },
                [(b"retry-after", self.retry_after)],
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive``: an HTTPException, so that body parsing passes it on."""

    def __init__(self) -> None:
        super().__init__(413)


class BodyLimitMiddleware:
    """413 for request bodies above ``limit`` bytes, except on ``exempt`` paths.

    A declared Content-Length above the limit is refused before the app runs; a chunked
    body is counted as the app reads it, and once it passes the limit ``receive`` raises
    and whatever the app answers is replaced by the 413 (if nothing was sent yet)."""

    def __init__(self, app: ASGIApp, *, limit: int, exempt: re.Pattern[str] | None) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            self.exempt is not None and self.exempt.fullmatch(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send)
            return
        received = 0
        exceeded = False
        replaced = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def replacing_send(message: Message) -> None:
            nonlocal replaced
            if exceeded and message["type"] == "http.response.start":
                replaced = True
                await self._refuse(send)
                return
            if replaced:
                return
            await send(message)

        await self.app(scope, counting_receive, replacing_send)

    async def _refuse(self, send: Send) -> None:
        problem = BodyTooLarge(
            f"the request body exceeds {self.limit} bytes", limit_bytes=self.limit
        )
        await _send_problem(send, 413, problem.to_body(), [(b"connection", b"close")])


class BodyTooLarge(PayloadTooLarge):
    slug = "body-too-large"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
