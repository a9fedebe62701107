"""The gateway's problem types (hds_common.errors gives each its status)."""

from __future__ import annotations

from typing import Any

from hds_common.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    GatewayTimeout,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
)

__all__ = [
    "BodyTooLarge",
    "ClientDisconnected",
    "InvalidContentLength",
    "MetricsForbidden",
    "MissingCode",
    "RateLimited",
    "RouteNotFound",
    "UpstreamFailed",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]


class RouteNotFound(NotFound):
    """No upstream serves the path (an unknown prefix, ``/internal/``, dot segments)."""

    slug = "route-not-found"


class MissingCode(BadRequest):
    slug = "missing-code"


class MetricsForbidden(Forbidden):
    slug = "metrics-forbidden"


class RateLimited(TooManyRequests):
    slug = "rate-limited"


class InvalidContentLength(BadRequest):
    slug = "invalid-content-length"

    def __init__(self) -> None:
        super().__init__("invalid Content-Length")


class BodyTooLarge(PayloadTooLarge):
    """A request body above the route's limit (declared or counted while streaming)."""

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(
            f"request body above the limit of {limit} bytes for this route", limit=limit, **kwargs
        )


class ClientDisconnected(BadRequest):
    slug = "client-disconnected"

    def __init__(self) -> None:
        super().__init__("the client went away during the upload")


class UpstreamUnreachable(BadGateway):
    slug = "upstream-unreachable"

    def __init__(self, upstream: str) -> None:
        super().__init__(f"the {upstream} service is unreachable")


class UpstreamTimeout(GatewayTimeout):
    slug = "upstream-timeout"

    def __init__(self, upstream: str) -> None:
        super().__init__(f"the {upstream} service did not answer in time")


class UpstreamFailed(BadGateway):
    slug = "upstream-failed"

    def __init__(self, upstream: str) -> None:
        super().__init__(f"the {upstream} service failed to answer")
