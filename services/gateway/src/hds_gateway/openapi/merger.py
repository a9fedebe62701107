"""One OpenAPI document for the whole public API: the gateway's own paths plus every
upstream's paths under the prefixes the gateway routes to it."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
import structlog

from hds_gateway.routing.table import upstream_for

__all__ = ["OpenApiMerger"]

log = structlog.get_logger("hds.gateway.openapi")

_SCHEMA_REF = "#/components/schemas/"


class OpenApiMerger:
    """Fetches each upstream's ``/openapi.json`` (cached for ``cache_seconds``) and merges
    them; an upstream that does not answer is left out with a note in the description."""

    def __init__(self, clients: Mapping[str, httpx.AsyncClient], *, cache_seconds: float) -> None:
        self._clients = dict(clients)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def document(self, own: Mapping[str, Any]) -> dict[str, Any]:
        names = list(self._clients)
        specs = await asyncio.gather(*(self._fetch(name) for name in names))
        merged = copy.deepcopy(dict(own))
        merged.setdefault("paths", {})
        missing: list[str] = []
        for name, spec in zip(names, specs, strict=True):
            if spec is None:
                missing.append(name)
            else:
                _merge(merged, name, spec)
        if missing:
            note = (
                "\n\nNot included because the service did not answer: " + ", ".join(missing) + "."
            )
            merged.setdefault("info", {})
            merged["info"]["description"] = merged["info"].get("description", "") + note
        return merged

    async def _fetch(self, name: str) -> dict[str, Any] | None:
        cached = self._cache.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        try:
            response = await self._clients[name].get("/openapi.json")
            response.raise_for_status()
            spec = response.json()
            if not isinstance(spec, dict):
                raise ValueError("not a JSON object")
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("openapi_unavailable", upstream=name, error=f"{type(exc).__name__}: {exc}")
            return None
        self._cache[name] = (now, spec)
        return spec


def _merge(merged: dict[str, Any], name: str, spec: Mapping[str, Any]) -> None:
    """Add ``spec``'s routed paths and their components to ``merged``; a schema whose name
    is taken by a different schema is renamed ``<Service><Name>``."""
    spec = copy.deepcopy(dict(spec))
    components: dict[str, Any] = merged.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    theirs: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    renames = {
        schema: f"{name.capitalize()}{schema}"
        for schema, body in theirs.items()
        if schema in schemas and _canonical(schemas[schema]) != _canonical(body)
    }
    if renames:
        spec = _rename_refs(spec, renames)
        theirs = spec.get("components", {}).get("schemas", {})
    for schema, body in theirs.items():
        schemas[renames.get(schema, schema)] = body
    for kind, entries in spec.get("components", {}).items():
        if kind != "schemas" and isinstance(entries, dict):
            components.setdefault(kind, {}).update(entries)
    for path, item in spec.get("paths", {}).items():
        # Only what the gateway routes to this service (not /internal, /readyz …).
        if upstream_for(path) == name:
            merged["paths"][path] = item
    known = {tag.get("name") for tag in merged.get("tags", [])}
    for tag in spec.get("tags", []):
        if tag.get("name") not in known:
            merged.setdefault("tags", []).append(tag)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _rename_refs(value: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        renamed: dict[str, Any] = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith(_SCHEMA_REF):
                target = item.removeprefix(_SCHEMA_REF)
                renamed[key] = _SCHEMA_REF + renames.get(target, target)
            else:
                renamed[key] = _rename_refs(item, renames)
        return renamed
    if isinstance(value, list):
        return [_rename_refs(item, renames) for item in value]
    return value
