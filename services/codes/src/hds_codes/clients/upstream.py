"""What the neighbours' clients share: sending a call, and turning a neighbour's error
answer into the problem this service answers."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from hds_codes.errors import UpstreamError
from hds_common.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    Unauthorized,
    UnprocessableContent,
)

__all__ = ["parse_answer", "send", "upstream_problem"]

ModelT = TypeVar("ModelT", bound=BaseModel)

_PROBLEM_PREFIX = "urn:hds:problem:"
_PASSED_THROUGH: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: UnprocessableContent,
    507: InsufficientStorage,
}
_STANDARD_MEMBERS = {"type", "title", "status", "detail", "instance", "request_id"}


# One class per (status, slug, title) a neighbour answered with; few in practice.
_PASSED_THROUGH_CLASSES: dict[tuple[int, str | None, str | None], type[ProblemError]] = {}


def _passed_through_class(status: int, slug: str | None, title: str | None) -> type[ProblemError]:
    """The problem class of ``status`` answering with a neighbour's slug and title: the
    caller sees the problem type the neighbour named (every problem here is a class)."""
    base = _PASSED_THROUGH[status]
    if slug is None and title is None:
        return base
    key = (status, slug, title)
    found = _PASSED_THROUGH_CLASSES.get(key)
    if found is None:
        attributes = {"slug": slug or base.slug, "title": title or base.title}
        found = _PASSED_THROUGH_CLASSES[key] = type(base.__name__, (base,), attributes)
    return found


def upstream_problem(response: httpx.Response, service: str) -> ProblemError:
    """The problem to answer for an upstream's error response: its own problem for the
    statuses a caller can act on (with its type and detail), 502 for anything else."""
    if response.status_code not in _PASSED_THROUGH:
        return UpstreamError(f"the {service} service answered {response.status_code}")
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    problem_type = body.get("type")
    slug = (
        problem_type.removeprefix(_PROBLEM_PREFIX)
        if isinstance(problem_type, str) and problem_type.startswith(_PROBLEM_PREFIX)
        else None
    )
    detail = body.get("detail") if isinstance(body.get("detail"), str) else None
    title = body.get("title") if isinstance(body.get("title"), str) else None
    extensions = {k: v for k, v in body.items() if k not in _STANDARD_MEMBERS}
    return _passed_through_class(response.status_code, slug, title)(detail, **extensions)


async def send(
    client: httpx.AsyncClient, service: str, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise GatewayTimeout(f"the {service} service did not answer in time") from None
    except httpx.TransportError:
        raise UpstreamError(f"the {service} service is unreachable") from None


def parse_answer(model: type[ModelT], response: httpx.Response, service: str) -> ModelT:
    """The neighbour's answer as ``model``; 502 when it is not what the contract says."""
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError):
        raise BadGateway(f"the {service} service sent an unexpected answer") from None
