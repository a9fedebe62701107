"""Request ids, access logs, Prometheus metrics, ``/healthz``, ``/readyz`` and ``/metrics``.

The middleware is plain ASGI (not ``BaseHTTPMiddleware``) so that streamed bodies pass
through untouched and unbuffered.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hds_common.errors import PROBLEM_CONTENT_TYPE, problem_type
from hds_common.logs import redact_path
from hds_common.request_context import request_id_var

__all__ = [
    "MetricsAccess",
    "ReadinessCheck",
    "RequestContextMiddleware",
    "health_router",
    "redact_path",
]

ReadinessCheck = Callable[[], Awaitable[None]]
# Decides who may read /metrics: returns to allow, raises a ProblemError to refuse.
MetricsAccess = Callable[[Request], Awaitable[None]]

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = structlog.get_logger("hds.access")
error_log = structlog.get_logger("hds.errors")


class RequestContextMiddleware:
    """Give every request an id, log it, count it, and turn crashes into problem+json."""

    def __init__(self, app: ASGIApp, *, service: str, registry: CollectorRegistry) -> None:
        self.app = app
        self.service = service
        self.requests = Counter(
            "hds_http_requests_total",
            "HTTP requests served",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "hds_http_request_duration_seconds",
            "Time to the end of the response body",
            ["service", "method", "route"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID_OK.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # the last line of defence: never leak a trace
            error_log.error(
                "unhandled_exception", path=redact_path(scope.get("path")), exc_info=exc
            )
            if not response_started:
                status = 500
                await _send_internal_error(send, request_id)
            else:
                raise
        finally:
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            self.requests.labels(self.service, method, route_path, str(status)).inc()
            self.latency.labels(self.service, method, route_path).observe(elapsed)
            access_log.info(
                "request",
                method=method,
                path=redact_path(scope.get("path")),
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
            request_id_var.reset(token)


async def _send_internal_error(send: Send, request_id: str) -> None:
    body = json.dumps(
        {
            "type": problem_type("internal-error"),
            "title": "Internal server error",
            "status": 500,
            "detail": "An unexpected error occurred; quote the request id when reporting it.",
            "request_id": request_id,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def health_router(
    checks: Callable[[], Mapping[str, ReadinessCheck]],
    registry: CollectorRegistry,
    *,
    check_timeout: float = 3.0,
    metrics_access: MetricsAccess | None = None,
) -> APIRouter:
    """``/healthz`` (the process answers), ``/readyz`` (dependencies answer), ``/metrics``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: database, blob store and upstreams reachable")
    async def readyz() -> JSONResponse:
        results: dict[str, Any] = {}
        ready = True
        for name, check in checks().items():
            try:
                await asyncio.wait_for(check(), timeout=check_timeout)
                results[name] = "ok"
            except Exception as exc:  # any failure means "not ready", with the reason
                ready = False
                results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
        if ready:
            return JSONResponse({"status": "ready", "checks": results})
        return JSONResponse(
            {
                "type": problem_type("not-ready"),
                "title": "Not ready",
                "status": 503,
                "checks": results,
            },
            status_code=503,
            media_type=PROBLEM_CONTENT_TYPE,
        )

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if metrics_access is not None:
            await metrics_access(request)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
