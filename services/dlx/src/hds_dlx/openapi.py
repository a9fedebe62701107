"""The published OpenAPI document: FastAPI's, adjusted where FastAPI cannot know better.

* No DLX operation can answer 422: path values are plain strings, the header is an
  optional string, and an unreadable ``tokentfa`` body is a 401 (see ``AnswersRoute``).
  FastAPI documents a 422 for every operation with parameters; it is removed here so the
  document matches both the behaviour and DIN/TS 19455.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI

from hds_dlx.config import API_PREFIX

__all__ = ["install_openapi"]

_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def install_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for path, operations in document.get("paths", {}).items():
            if path.startswith(API_PREFIX + "/"):
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if '"#/components/schemas/HTTPValidationError"' not in json.dumps(document["paths"]):
            for name in _VALIDATION_SCHEMAS:
                schemas.pop(name, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
