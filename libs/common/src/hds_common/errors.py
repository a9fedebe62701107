"""RFC 9457 problem details for every service.

Exception hierarchy::

    ProblemError                     status + stable ``type`` + title
    ├── BadRequest            400
    ├── Unauthorized          401    adds ``WWW-Authenticate``
    ├── Forbidden             403
    ├── NotFound              404
    ├── Conflict              409
    ├── PayloadTooLarge       413
    ├── UnsupportedMediaType  415
    ├── UnprocessableContent  422
    ├── TooManyRequests       429    adds ``Retry-After``
    ├── BadGateway            502
    ├── ServiceUnavailable    503    adds ``Retry-After``
    ├── GatewayTimeout        504
    └── InsufficientStorage   507

Every error answer is ``application/problem+json`` with a ``type`` of the form
``urn:hds:problem:<slug>`` that clients may switch on, the request id, and never a
stack trace: unhandled exceptions are logged with their trace and answered with a
generic 500.

Each service names its own answers in its ``errors.py``: a subclass per problem type, with
its ``slug``, ``title`` and (through its base) ``status``. Routes raise those classes and
document them with :func:`problem_responses`, so the OpenAPI document lists exactly the
problem types a route can answer. The classes below that are not a bare status are shared
by two services or more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hds_common.logs import redact_path
from hds_common.request_context import current_request_id

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "GatewayTimeout",
    "InsufficientStorage",
    "InvalidToken",
    "MissingToken",
    "NotFound",
    "PayloadTooLarge",
    "ProblemError",
    "ServiceTokenInvalid",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnprocessableContent",
    "UnsupportedMediaType",
    "install_problem_handlers",
    "problem_response",
    "problem_responses",
    "problem_type",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"

log = structlog.get_logger("hds.errors")


_WHERE = {"body": "the body", "query": "the query", "path": "the path", "header": "the headers"}


def _describe(loc: list[str], msg: str) -> str:
    """``['body', 'items', '0']`` + msg -> ``items.0 (in the body): msg``, in the client's
    terms: what it sent, where, and what is wrong with it."""
    if not loc:
        return msg
    where = _WHERE.get(loc[0])
    if where is None:
        return f"{'.'.join(loc)}: {msg}"
    name = ".".join(loc[1:])
    return f"{name} (in {where}): {msg}" if name else f"{where}: {msg}"


def _invalid_json(errors: Any) -> dict[str, Any]:
    """A body that does not parse as JSON: say so, and where, instead of a field error."""
    err = next(e for e in errors if e.get("type") == "json_invalid")
    loc = list(err.get("loc", ()))
    position = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    reason = str((err.get("ctx") or {}).get("error", "")).strip()
    detail = "The request body is not valid JSON"
    if reason:
        detail += f": {reason}"
    if position is not None:
        detail += f" (at character {position})"
    return {"type": problem_type("invalid-json"), "title": "Malformed JSON", "detail": detail}


def problem_type(slug: str) -> str:
    return f"urn:hds:problem:{slug}"


class ProblemError(Exception):
    """An error with a defined HTTP answer; raise it anywhere below a route."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"
    # What a raise site that gives no detail says.
    default_detail: ClassVar[str | None] = None

    def __init_subclass__(
        cls,
        *,
        slug: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``class AccountNotFound(NotFound, slug="account-not-found", detail="No such
        account."):`` names a problem type in one statement: its slug, its title where it
        has its own, and the detail of a raise site that gives none
        (``raise AccountNotFound()``; ``raise AccountNotFound("...")`` says another)."""
        super().__init_subclass__(**kwargs)
        if slug is not None:
            cls.slug = slug
        if title is not None:
            cls.title = title
        if detail is not None:
            cls.default_detail = detail

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        if detail is None:
            detail = self.default_detail
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        body.update(self.extensions)
        return body


class BadRequest(ProblemError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class Unauthorized(ProblemError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("WWW-Authenticate", 'Bearer realm="hds"')
        super().__init__(detail, headers=headers, **kwargs)


class Forbidden(ProblemError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(ProblemError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(ProblemError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class PayloadTooLarge(ProblemError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(ProblemError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class UnprocessableContent(ProblemError):
    status = 422
    slug = "validation-error"
    title = "Request validation failed"


class TooManyRequests(ProblemError):
    status = 429
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Retry-After"] = str(max(1, retry_after))
        super().__init__(detail, headers=headers, **kwargs)


class BadGateway(ProblemError):
    status = 502
    slug = "bad-gateway"
    title = "Upstream service failed"


class ServiceUnavailable(ProblemError):
    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 5, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers["Retry-After"] = str(max(0, retry_after))
        super().__init__(detail, headers=headers, **kwargs)


class GatewayTimeout(ProblemError):
    status = 504
    slug = "gateway-timeout"
    title = "Upstream service timed out"


class InsufficientStorage(ProblemError):
    status = 507
    slug = "quota-exceeded"
    title = "Storage quota exceeded"


class MissingToken(Unauthorized):
    slug = "missing-token"


class InvalidToken(Unauthorized):
    """A token that is expired, forged, of another audience, or of an ended session."""

    slug = "invalid-token"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("WWW-Authenticate", 'Bearer realm="hds", error="invalid_token"')
        super().__init__(detail, headers=headers, **kwargs)


class ServiceTokenInvalid(Unauthorized):
    """An ``/internal`` route called without a valid service token."""

    slug = "service-token-invalid"


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "urn:hds:problem:<slug>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
    },
    "additionalProperties": True,
}


def problem_responses(*problems: type[ProblemError]) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route that may answer ``problems``: per status, the problem
    types as ``application/problem+json`` examples, and their slugs in the description."""
    by_status: dict[int, list[type[ProblemError]]] = defaultdict(list)
    for problem in problems:
        if problem not in by_status[problem.status]:
            by_status[problem.status].append(problem)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        listed = by_status[status]
        responses[status] = {
            "description": "; ".join(f"`{p.slug}`: {p.title}" for p in listed),
            "content": {
                PROBLEM_CONTENT_TYPE: {
                    "schema": _PROBLEM_SCHEMA,
                    "examples": {
                        p.slug: {
                            "summary": p.title,
                            "value": {
                                "type": problem_type(p.slug),
                                "title": p.title,
                                "status": status,
                            },
                        }
                        for p in listed
                    },
                }
            },
        }
    return responses


def problem_response(
    status: int,
    body: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body.setdefault("status", status)
    request_id = current_request_id()
    if request_id:
        body.setdefault("request_id", request_id)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_CONTENT_TYPE
    )


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    416: ("range-not-satisfiable", "Range not satisfiable"),
}


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as problem+json."""

    async def on_problem(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(exc.status, exc.to_body(), exc.headers)

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
        body: dict[str, Any] = {"type": problem_type(slug), "title": title}
        if isinstance(exc.detail, str) and exc.detail and exc.detail != title:
            body["detail"] = exc.detail
        return problem_response(exc.status_code, body, exc.headers)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        raw = exc.errors()
        if any(err.get("type") == "json_invalid" for err in raw):
            return problem_response(400, _invalid_json(raw))
        errors = [
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
            for err in raw
        ]
        described = [
            _describe([str(part) for part in err.get("loc", ())], str(err.get("msg", "")))
            for err in raw[:5]
        ]
        body = {
            "type": problem_type("validation-error"),
            "title": "Request validation failed",
            "detail": "; ".join(described),
            "errors": errors,
        }
        return problem_response(422, body)

    async def on_unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled_exception",
            method=request.method,
            path=redact_path(request.url.path),
            exc_info=exc,
        )
        body = {
            "type": problem_type("internal-error"),
            "title": "Internal server error",
            "detail": "An unexpected error occurred; quote the request id when reporting it.",
        }
        return problem_response(500, body)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unhandled)
