"""CORS for the configured SPA origins, answered by the gateway itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.gateway.support import Upstreams, bearer, gateway_settings, running_gateway

SPA = "https://portal.example"


@pytest.fixture(scope="module")
async def cors_gateway(upstreams: Upstreams) -> AsyncIterator[httpx.AsyncClient]:
    settings = gateway_settings(upstreams, cors_origins=f"{SPA}, https://admin.example")
    async with running_gateway(settings) as client:
        yield client


async def test_preflight_is_answered_by_the_gateway(
    cors_gateway: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    response = await cors_gateway.options(
        "/storage/v1/studies",
        headers={
            "Origin": SPA,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, range",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SPA
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "DELETE" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "range" in allowed
    # No token needed and nothing reaches a service.
    assert all(state.requests == [] for state in upstreams.states.values())


async def test_preflight_from_another_origin_is_refused(
    cors_gateway: httpx.AsyncClient,
) -> None:
    response = await cors_gateway.options(
        "/storage/v1/studies",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


async def test_responses_expose_download_headers_to_the_spa(
    cors_gateway: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    token = upstreams.issuer.mint("account-1")
    response = await cors_gateway.get("/storage/v1/blob", headers={**bearer(token), "Origin": SPA})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SPA
    assert response.headers["access-control-allow-credentials"] == "true"
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert exposed >= {
        "content-disposition",
        "content-length",
        "accept-ranges",
        "content-range",
        "etag",
        "x-request-id",
    }
    # Errors carry CORS headers too, so the SPA can read the problem.
    unauthorized = await cors_gateway.get("/storage/v1/studies", headers={"Origin": SPA})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["access-control-allow-origin"] == SPA
    # Other origins get no CORS headers.
    foreign = await cors_gateway.get(
        "/storage/v1/blob", headers={**bearer(token), "Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in foreign.headers


async def test_no_cors_without_configured_origins(gateway: httpx.AsyncClient) -> None:
    response = await gateway.options(
        "/storage/v1/studies",
        headers={"Origin": SPA, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers
