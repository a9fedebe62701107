"""The merged OpenAPI document and the aggregated readiness."""

from __future__ import annotations

import re

import httpx

from tests.gateway.support import Upstreams, gateway_settings, running_gateway, serve
from tests.gateway.support_standin import UpstreamState, stand_in

PROBLEM = "application/problem+json"


async def _stopped_url() -> str:
    async with serve(stand_in(UpstreamState("gone"), dict)) as url:
        pass
    return str(url)


async def test_openapi_merges_every_service_under_its_prefix(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    # Each upstream's public paths, the gateway's own paths.
    for path in (
        "/.well-known/jwks.json",
        "/codes/v1/items/{item_id}",
        "/storage/v1/items/{item_id}",
        "/storage/v1/blob",
        "/dlx/v1/token/{value}",
        "/c/{code}",
        "/",
        "/healthz",
        "/readyz",
    ):
        assert path in paths, path
    # Never what the gateway does not route.
    assert "/internal/v1/validate" not in paths
    assert not [path for path in paths if path.startswith("/internal")]
    assert "/{path}" not in paths
    assert document["info"]["title"] == "HDS gateway"
    assert "did not answer" not in document["info"].get("description", "")


async def test_openapi_keeps_same_named_schemas_apart(gateway: httpx.AsyncClient) -> None:
    document = (await gateway.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert set(schemas["Item"]["properties"]) == {"code"}
    assert set(schemas["StorageItem"]["properties"]) == {"size"}

    def response_ref(path: str) -> str:
        ok = document["paths"][path]["get"]["responses"]["200"]
        ref: str = ok["content"]["application/json"]["schema"]["$ref"]
        return ref

    assert response_ref("/codes/v1/items/{item_id}") == "#/components/schemas/Item"
    assert response_ref("/storage/v1/items/{item_id}") == "#/components/schemas/StorageItem"
    # Identical schemas are shared, not duplicated.
    assert "StorageHTTPValidationError" not in schemas


async def test_openapi_documents_are_cached(upstreams: Upstreams) -> None:
    settings = gateway_settings(upstreams, openapi_cache_seconds=3600)
    async with running_gateway(settings) as client:
        before = {name: state.openapi_fetches for name, state in upstreams.states.items()}
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/openapi.json")).status_code == 200
    after = {name: state.openapi_fetches for name, state in upstreams.states.items()}
    assert {name: after[name] - before[name] for name in after} == dict.fromkeys(after, 1)


async def test_openapi_skips_a_down_service_with_a_note(upstreams: Upstreams) -> None:
    settings = gateway_settings(upstreams, suite=upstreams.suite(dlx_url=await _stopped_url()))
    async with running_gateway(settings) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert "/dlx/v1/token/{value}" not in document["paths"]
    assert "/storage/v1/blob" in document["paths"]
    assert "did not answer: dlx." in document["info"]["description"]


async def test_readiness_aggregates_the_services(
    gateway: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    ready = await gateway.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {
        "auth": "ok",
        "codes": "ok",
        "storage": "ok",
        "dlx": "ok",
    }
    upstreams.states["storage"].ready = False
    not_ready = await gateway.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.headers["content-type"].startswith(PROBLEM)
    checks = not_ready.json()["checks"]
    assert checks["storage"].startswith("failed")
    assert "503" in checks["storage"]
    assert [name for name, result in checks.items() if result != "ok"] == ["storage"]


async def test_readiness_names_a_stopped_service(upstreams: Upstreams) -> None:
    settings = gateway_settings(upstreams, suite=upstreams.suite(codes_url=await _stopped_url()))
    async with running_gateway(settings) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["type"] == "urn:hds:problem:not-ready"
    assert body["checks"]["codes"].startswith("failed: ConnectError")
    assert body["checks"]["auth"] == "ok"


async def test_docs_page_shows_the_merged_document_without_a_token(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in response.text


async def test_docs_and_redoc_load_every_asset_from_the_suite(
    gateway: httpx.AsyncClient,
) -> None:
    """Nothing from a CDN: every script, style and icon the pages name is ours and served."""
    for page in ("/docs", "/redoc"):
        response = await gateway.get(page)
        assert response.status_code == 200, page
        references = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', response.text)
        references += re.findall(r"url: ['\"]([^'\"]+)['\"]", response.text)
        assets = [ref for ref in references if ref != "/openapi.json"]
        assert assets, (page, response.text)
        for ref in assets:
            assert ref.startswith("/docs/assets/"), (page, ref)
            asset = await gateway.get(ref)
            assert asset.status_code == 200, ref
            assert len(asset.content) > 1000, ref
        assert "fonts.googleapis" not in response.text


async def test_unknown_docs_assets_are_404_problems(gateway: httpx.AsyncClient) -> None:
    for name in ("nothing.js", "..%2F..%2Fcore.py", "%2Fetc%2Fpasswd"):
        response = await gateway.get(f"/docs/assets/{name}")
        assert response.status_code == 404, name
        assert response.headers["content-type"].startswith(PROBLEM)
