"""OpenAPI fragments the storage routes share: binary bodies, answers in ranges, and a
second success answer besides a route's main one."""

from __future__ import annotations

from typing import Any

__all__ = ["BINARY", "Responses", "also_ok", "ranged_content"]

Responses = dict[int | str, dict[str, Any]]

BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}


def ranged_content(*media_types: str, headers: dict[str, Any] | None = None) -> Responses:
    """The 200 (whole body, in one of ``media_types``) and 206 (Range) answers of a
    streamed route; ``headers`` that both may carry."""
    full: dict[str, Any] = {"content": dict.fromkeys(media_types, BINARY)}
    partial: dict[str, Any] = {"description": "Partial content (Range)"}
    if headers is not None:
        full["headers"] = headers
        partial["headers"] = headers
    return {200: full, 206: partial}


def also_ok(description: str) -> Responses:
    """A 200 answer of a route whose main answer is another (201)."""
    return {200: {"description": description}}
