"""The gateway's problem types (hds_common.errors gives each its status)."""

from __future__ import annotations

from typing import Any, ClassVar

from hds_common.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    GatewayTimeout,
    NotFound,
    PayloadTooLarge,
    ProblemError,
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
    "UpstreamProblem",
    "UpstreamTimeout",
    "UpstreamUnreachable",
]


class RouteNotFound(NotFound, slug="route-not-found"):
    """No upstream serves the path (an unknown prefix, ``/internal/``, dot segments)."""


class MissingCode(BadRequest, slug="missing-code"):
    pass


class MetricsForbidden(Forbidden, slug="metrics-forbidden"):
    pass


class RateLimited(TooManyRequests, slug="rate-limited"):
    pass


class InvalidContentLength(
    BadRequest, slug="invalid-content-length", detail="invalid Content-Length"
):
    pass


class BodyTooLarge(PayloadTooLarge):
    """A request body above the route's limit (declared or counted while streaming)."""

    def __init__(self, limit: int, **kwargs: Any) -> None:
        super().__init__(
            f"request body above the limit of {limit} bytes for this route", limit=limit, **kwargs
        )


class ClientDisconnected(
    BadRequest,
    slug="client-disconnected",
    detail="the client went away during the upload",
):
    pass


class UpstreamProblem(ProblemError):
    """An answer about one upstream service, named in the detail after ``the``."""

    what: ClassVar[str]

    def __init__(self, upstream: str) -> None:
        super().__init__(f"the {upstream} service {self.what}")


class UpstreamUnreachable(BadGateway, UpstreamProblem, slug="upstream-unreachable"):
    what = "is unreachable"


class UpstreamTimeout(GatewayTimeout, UpstreamProblem, slug="upstream-timeout"):
    what = "did not answer in time"


class UpstreamFailed(BadGateway, UpstreamProblem, slug="upstream-failed"):
    what = "failed to answer"
