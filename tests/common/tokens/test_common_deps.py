"""hds_common.deps through a small app: the one bearer-token dependency and the one
service-token check, reading what they need from ``app.state.runtime``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.security import HTTPBearer
from pydantic import SecretStr

from hds_common.app import create_service_app
from hds_common.deps import CallingServiceDep, bearer_claims
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token
from hds_common.settings import ServiceSettings, SuiteSettings
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import ACCOUNT_AUDIENCE, DLX_AUDIENCE, TokenClaims, TokenVerifier

SECRET = "a-test-secret-of-reasonable-length"

bearer = HTTPBearer(auto_error=False)
ClaimsDep = Annotated[TokenClaims, Depends(bearer_claims(audience=ACCOUNT_AUDIENCE, scheme=bearer))]


@dataclass
class Runtime:
    settings: ServiceSettings
    verifier: TokenVerifier | None


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


def build_app(issuer: TestIssuer) -> FastAPI:
    router = APIRouter()

    @router.get("/v1/me")
    async def me(claims: ClaimsDep) -> dict[str, str]:
        return {"sub": claims.sub}

    @router.get("/internal/v1/caller")
    async def caller(service: CallingServiceDep) -> dict[str, str]:
        return {"service": service}

    app = create_service_app(service="test", title="test", description="test", routers=[router])
    settings = ServiceSettings(suite=SuiteSettings(internal_secret=SecretStr(SECRET)))
    app.state.runtime = Runtime(
        settings=settings, verifier=TokenVerifier(issuer=issuer.issuer, keys=issuer.keys())
    )
    return app


@pytest.fixture
async def client(issuer: TestIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(issuer)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client


def _slug(response: httpx.Response) -> str:
    problem_type = response.json()["type"]
    assert isinstance(problem_type, str)
    return problem_type.removeprefix("urn:hds:problem:")


async def test_a_request_without_a_token_is_401_missing_token(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic dXNlcjpwdw=="}):
        response = await client.get("/v1/me", headers=headers)
        assert response.status_code == 401, headers
        assert _slug(response) == "missing-token", headers
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_bad_token_is_401_invalid_token(
    client: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    bad = {
        "garbage": "not.a.jwt",
        "other audience": issuer.mint("acc-1", audience=DLX_AUDIENCE),
        "expired": issuer.mint("acc-1", ttl=-3600),
        "other issuer's key": TestIssuer(kid=issuer.kid).mint("acc-1"),
    }
    for what, token in bad.items():
        response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, what
        assert _slug(response) == "invalid-token", what
        assert 'error="invalid_token"' in response.headers["www-authenticate"], what


async def test_a_valid_token_passes_with_its_claims(
    client: httpx.AsyncClient, issuer: TestIssuer
) -> None:
    token = issuer.mint("acc-1")
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "acc-1"}


async def test_an_internal_route_without_a_valid_service_token_is_401(
    client: httpx.AsyncClient,
) -> None:
    refused = {
        "missing": {},
        "forged": {SERVICE_TOKEN_HEADER: mint_service_token("another-secret", "dlx")},
        "malformed": {SERVICE_TOKEN_HEADER: "v1.dlx"},
    }
    for what, headers in refused.items():
        response = await client.get("/internal/v1/caller", headers=headers)
        assert response.status_code == 401, what
        assert _slug(response) == "service-token-invalid", what


async def test_an_internal_route_names_the_calling_service(client: httpx.AsyncClient) -> None:
    token = mint_service_token(SECRET, "storage")
    response = await client.get("/internal/v1/caller", headers={SERVICE_TOKEN_HEADER: token})
    assert response.status_code == 200
    assert response.json() == {"service": "storage"}


def test_the_bearer_scheme_is_in_the_openapi_document(issuer: TestIssuer) -> None:
    document = build_app(issuer).openapi()
    assert document["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer"}
    }
    assert document["paths"]["/v1/me"]["get"]["security"] == [{"HTTPBearer": []}]
    # The token is a header, never a parameter of the route.
    assert "parameters" not in document["paths"]["/v1/me"]["get"]
