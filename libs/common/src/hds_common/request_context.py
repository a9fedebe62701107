"""The request id of the request being served, for logs, errors and upstream calls."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["REQUEST_ID_HEADER", "current_request_id", "request_id_var"]

REQUEST_ID_HEADER = "X-Request-ID"

request_id_var: ContextVar[str | None] = ContextVar("hds_request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()
