"""The service's published OpenAPI document against the DLX contract (DIN/TS 19455).

The contract itself is not part of the repository. What these tests check of it — the
operations, their answers' status codes and content shapes, parameters, request bodies,
security, and the shapes of its schemas — is written down in ``dlx_contract_facts.json``
beside this file (no descriptions, no examples: facts only), so the tests run on any
clone. Where the contract is at hand (``../shared`` beside the checkout, as developers and
CI have it, or ``HDS_DLX_CONTRACT``), one more test derives those facts from it again and
requires the recorded ones to be exactly these.

Schemas are compared after resolving ``$ref`` on both sides (component names may differ
in case: ``ApiInfo`` here, ``apiInfo`` there): property names, types, formats, enums,
``required`` lists and array item shapes must be identical.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]


def _contract_path() -> Path | None:
    """``HDS_DLX_CONTRACT``, or ``../shared`` beside the checkout (developers and CI)."""
    explicit = os.environ.get("HDS_DLX_CONTRACT")
    if explicit:  # asked for: it must be there
        return Path(explicit)
    candidate = REPO.parent / "shared/dlx/dicomLinkExchange.yaml"
    return candidate if candidate.is_file() else None


METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Answers the service documents beyond the contract, each for a reason:
# list is 503 comebackLater (like the downloads) while the package is still being ingested.
EXTENSIONS = {("/list", "get"): {"503"}, ("/downloadall", "get"): {"404"}}
# Errors without a body in the contract are answered as problem+json (RFC 9457).
PROBLEM_MEDIA_TYPES = {"application/problem+json"}


FACTS = Path(__file__).with_name("dlx_contract_facts.json")


def _contract_document() -> dict[str, Any] | None:
    path = _contract_path()
    if path is None:
        return None
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def contract_facts(contract: dict[str, Any]) -> dict[str, Any]:
    """The parts of an OpenAPI document these tests read, ``$ref`` resolved, as shapes."""
    paths: dict[str, Any] = {}
    for path, method in _operations(contract):
        operation = contract["paths"][path][method]
        entry: dict[str, Any] = {
            "responses": {
                str(code): {"content": _content(contract, response)}
                for code, response in operation["responses"].items()
            },
            "parameters": [
                {
                    "in": (resolved := _resolve(contract, parameter))["in"],
                    "name": resolved["name"],
                    "required": bool(resolved.get("required", False)),
                    "schema": _shape(contract, resolved["schema"]),
                }
                for parameter in operation.get("parameters", [])
            ],
            "security": operation.get("security", []),
        }
        for content in entry["responses"].values():
            content["content"] = {
                media: ({"schema": shape} if shape is not None else {})
                for media, shape in content["content"].items()
            }
        if "requestBody" in operation:
            body = _resolve(contract, operation["requestBody"])
            entry["requestBody"] = {
                "required": body.get("required", False),
                "content": {
                    media: ({"schema": shape} if shape is not None else {})
                    for media, shape in _content(contract, body).items()
                },
            }
        paths.setdefault(path, {})[method] = entry
    scheme = contract["components"]["securitySchemes"]["bearerAuth"]
    return {
        "servers": [{"url": contract["servers"][0]["url"]}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {k: scheme[k] for k in ("type", "scheme", "bearerFormat")}
            },
            "schemas": {
                name: _shape(contract, schema)
                for name, schema in contract["components"]["schemas"].items()
            },
        },
    }


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(FACTS.read_text(encoding="utf-8"))
    return document


@pytest.mark.skipif(_contract_path() is None, reason="the DLX contract is not beside this checkout")
def test_the_recorded_facts_are_the_contracts() -> None:
    """The facts file says what the contract says (run wherever the contract is)."""
    document = _contract_document()
    assert document is not None
    recorded = json.loads(FACTS.read_text(encoding="utf-8"))
    assert contract_facts(document) == recorded


@pytest.fixture
async def published(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _shape(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(document, schema)
    assert not {"anyOf", "oneOf", "allOf"} & schema.keys(), schema
    if schema.get("type") == "object" or "properties" in schema:
        return {
            "type": "object",
            "required": sorted(schema.get("required", [])),
            "properties": {
                name: _shape(document, prop) for name, prop in schema["properties"].items()
            },
        }
    if schema.get("type") == "array":
        return {"type": "array", "items": _shape(document, schema["items"])}
    shape: dict[str, Any] = {"type": schema.get("type")}
    if "format" in schema:
        shape["format"] = schema["format"]
    if "enum" in schema:
        shape["enum"] = sorted(str(value) for value in schema["enum"])
    return shape


def _content(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(document, node)
    return {
        media_type: _shape(document, entry["schema"]) if "schema" in entry else None
        for media_type, entry in node.get("content", {}).items()
    }


def _parameters(document: dict[str, Any], operation: dict[str, Any]) -> dict[Any, Any]:
    result = {}
    for parameter in operation.get("parameters", []):
        parameter = _resolve(document, parameter)
        key = (parameter["in"], parameter["name"].lower())
        result[key] = (
            bool(parameter.get("required", False)),
            _shape(document, parameter["schema"]),
        )
    return result


def _operations(contract: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (path, method)
        for path, item in contract["paths"].items()
        for method in item
        if method in METHODS
    ]


def test_the_contract_is_the_one_we_expect(contract: dict[str, Any]) -> None:
    # Guards the comparison below against an empty or truncated contract file.
    assert contract["servers"][0]["url"] == "/dlx/v1"
    assert sorted(_operations(contract)) == [
        ("/api_info", "get"),
        ("/download/{id}", "get"),
        ("/downloadall", "get"),
        ("/list", "get"),
        ("/token/{value}", "get"),
        ("/tokentfa/{value}", "post"),
    ]


def test_paths_and_methods_match(contract: dict[str, Any], published: dict[str, Any]) -> None:
    base = contract["servers"][0]["url"]
    expected = {(base + path, method) for path, method in _operations(contract)}
    actual = {
        (path, method)
        for path, item in published["paths"].items()
        if path.startswith(base + "/")
        for method in item
        if method in METHODS
    }
    assert actual == expected


def test_operations_match(contract: dict[str, Any], published: dict[str, Any]) -> None:
    base = contract["servers"][0]["url"]
    for path, method in _operations(contract):
        where = f"{method.upper()} {path}"
        theirs = contract["paths"][path][method]
        ours = published["paths"][base + path][method]

        codes = set(map(str, theirs["responses"]))
        assert set(ours["responses"]) - EXTENSIONS.get((path, method), set()) == codes, where

        for code, response in theirs["responses"].items():
            expected = _content(contract, response)
            actual = _content(published, ours["responses"][str(code)])
            if expected:
                assert actual == expected, f"{where} {code}"
            else:
                assert set(actual) <= PROBLEM_MEDIA_TYPES, f"{where} {code}"

        assert _parameters(published, ours) == _parameters(contract, theirs), where

        if "requestBody" in theirs:
            body = _resolve(contract, theirs["requestBody"])
            assert ours["requestBody"]["required"] == body.get("required", False), where
            assert _content(published, ours["requestBody"]) == _content(contract, body), where
        else:
            assert "requestBody" not in ours, where

        assert ours.get("security", []) == theirs.get("security", []), where


def test_extensions_are_the_documented_comeback_later(published: dict[str, Any]) -> None:
    list_503 = published["paths"]["/dlx/v1/list"]["get"]["responses"]["503"]
    assert _content(published, list_503) == {
        "application/json": {
            "type": "object",
            "required": [],
            "properties": {"timeOutInSeconds": {"type": "integer"}},
        }
    }


def test_security_scheme_matches(contract: dict[str, Any], published: dict[str, Any]) -> None:
    theirs = contract["components"]["securitySchemes"]
    ours = published["components"]["securitySchemes"]
    assert set(ours) == set(theirs) == {"bearerAuth"}
    for key in ("type", "scheme", "bearerFormat"):
        assert ours["bearerAuth"][key] == theirs["bearerAuth"][key]


def test_every_contract_schema_has_its_counterpart(
    contract: dict[str, Any], published: dict[str, Any]
) -> None:
    ours = {name.lower(): schema for name, schema in published["components"]["schemas"].items()}
    for name, schema in contract["components"]["schemas"].items():
        assert name.lower() in ours, name
        assert _shape(published, ours[name.lower()]) == _shape(contract, schema), name
