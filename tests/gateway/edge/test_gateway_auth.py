"""Edge JWT verification: forged and expired tokens, audiences, public routes, JWKS cache."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from jose import jwk

from hds_common.testing.tokens import TestIssuer
from tests.gateway.support import (
    Upstreams,
    bearer,
    gateway_settings,
    header_values,
    running_gateway,
)

PROBLEM = "application/problem+json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(upstreams: Upstreams, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": upstreams.issuer.issuer,
        "aud": "hds-account",
        "sub": "account-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return claims


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _public_pem(issuer: TestIssuer) -> bytes:
    key = jwk.construct(issuer.jwks["keys"][0], algorithm="ES256")
    pem: bytes = key.to_pem()
    return serialization.load_pem_public_key(pem).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["status"] == 401


async def test_valid_account_token_is_forwarded_with_its_authorization(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    response = await gateway.get("/storage/v1/studies", headers=bearer(account_token))
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["service"] == "storage"
    assert header_values(seen, "authorization") == [f"Bearer {account_token}"]
    # No identity header is invented for the upstream to trust.
    names = {name for name, _ in seen["headers"]}
    assert not {"x-user-id", "x-hds-subject", "x-hds-service-token"} & names


async def test_missing_token_is_401(gateway: httpx.AsyncClient, upstreams: Upstreams) -> None:
    response = await gateway.get("/storage/v1/studies")
    _assert_unauthorized(response)
    assert response.json()["type"] == "urn:hds:problem:missing-token"
    assert upstreams.states["storage"].requests == []


@pytest.mark.parametrize("scheme", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
async def test_non_bearer_authorization_is_401(gateway: httpx.AsyncClient, scheme: str) -> None:
    _assert_unauthorized(await gateway.get("/codes/v1/codes", headers={"Authorization": scheme}))


def _forgeries(upstreams: Upstreams) -> dict[str, str]:
    issuer = upstreams.issuer
    kid = issuer.kid
    claims = _claims(upstreams)
    none_token = _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."
    hs_signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
    hs_signature = hmac.new(_public_pem(issuer), hs_signing_input.encode(), hashlib.sha256)
    valid = issuer.mint("account-1")
    header, payload, signature = valid.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_claims["sub"] = "someone-else"
    tampered_claims["roles"] = ["admin"]
    stranger = TestIssuer(issuer=issuer.issuer, kid="unknown-kid")
    return {
        "alg-none": none_token,
        "alg-none-without-kid": _unsigned({"alg": "none"}, claims) + ".",
        "hs256-signed-with-public-key": f"{hs_signing_input}.{_b64(hs_signature.digest())}",
        "expired": issuer.mint("account-1", ttl=-120),
        "not-yet-valid": issuer.mint("account-1", nbf=int(time.time()) + 300),
        "wrong-audience": issuer.mint("account-1", audience="hds-other"),
        "wrong-issuer": issuer.mint("account-1", iss="https://evil.example"),
        "unknown-kid": stranger.mint("account-1"),
        "tampered-payload": f"{header}.{_b64(json.dumps(tampered_claims).encode())}.{signature}",
        "signature-stripped": f"{header}.{payload}.",
        "garbage": "not.a.jwt",
    }


FORGERIES = [
    "alg-none",
    "alg-none-without-kid",
    "hs256-signed-with-public-key",
    "expired",
    "not-yet-valid",
    "wrong-audience",
    "wrong-issuer",
    "unknown-kid",
    "tampered-payload",
    "signature-stripped",
    "garbage",
]


@pytest.mark.parametrize("forgery", FORGERIES)
async def test_forged_or_invalid_token_is_401_and_never_forwarded(
    gateway: httpx.AsyncClient, upstreams: Upstreams, forgery: str
) -> None:
    token = _forgeries(upstreams)[forgery]
    response = await gateway.get("/storage/v1/studies", headers=bearer(token))
    _assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert upstreams.states["storage"].requests == []


async def test_clock_skew_of_up_to_30_seconds_is_tolerated(
    gateway: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    issuer = upstreams.issuer
    recently_expired = issuer.mint("account-1", ttl=-10)
    slightly_early = issuer.mint("account-1", nbf=int(time.time()) + 10)
    for token in (recently_expired, slightly_early):
        response = await gateway.get("/storage/v1/studies", headers=bearer(token))
        assert response.status_code == 200, response.text


async def test_dlx_token_only_on_dlx_routes(gateway: httpx.AsyncClient, dlx_token: str) -> None:
    for path in ("/dlx/v1/list", "/dlx/v1/download/item-1", "/dlx/v1/downloadall"):
        response = await gateway.get(path, headers=bearer(dlx_token))
        assert response.status_code == 200, (path, response.text)
        assert response.json()["service"] == "dlx"
    for path in ("/storage/v1/studies", "/codes/v1/codes", "/auth/v1/me"):
        _assert_unauthorized(await gateway.get(path, headers=bearer(dlx_token)))


async def test_account_token_not_on_dlx_routes(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    for path in ("/dlx/v1/list", "/dlx/v1/download/item-1", "/dlx/v1/downloadall"):
        _assert_unauthorized(await gateway.get(path, headers=bearer(account_token)))


PUBLIC_ROUTES = [
    ("POST", "/auth/v1/register"),
    ("POST", "/auth/v1/activate"),
    ("GET", "/auth/v1/activate"),  # the link in the activation mail
    ("POST", "/auth/v1/activation/resend"),
    ("GET", "/auth/v1/invitation"),  # the link in the invitation mail
    ("POST", "/auth/v1/invitation/accept"),
    ("POST", "/auth/v1/login"),
    ("POST", "/auth/v1/refresh"),
    ("POST", "/auth/v1/logout"),
    ("POST", "/auth/v1/password/reset"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/auth/v1/jwks.json"),
    ("GET", "/dlx/v1/api_info"),
    ("GET", "/dlx/v1/token/ABCD-EFGH-JKMN"),
    ("POST", "/dlx/v1/tokentfa/ABCD-EFGH-JKMN"),
]


@pytest.mark.parametrize(("method", "path"), PUBLIC_ROUTES)
async def test_public_routes_need_no_token(
    gateway: httpx.AsyncClient, upstreams: Upstreams, method: str, path: str
) -> None:
    response = await gateway.request(method, path, json={"any": "body"})
    assert response.status_code == 200, response.text
    if path == "/.well-known/jwks.json":
        assert response.json() == upstreams.issuer.jwks
    else:
        service = path.split("/")[1]
        assert [seen["path"] for seen in upstreams.states[service].requests] == [path]


NOT_PUBLIC = [
    ("GET", "/auth/v1/me"),
    ("PATCH", "/auth/v1/me/settings"),
    ("POST", "/auth/v1/password/change"),
    ("GET", "/auth/v1/login"),  # public only as POST
    ("POST", "/auth/v1/admin/invitations"),
    ("POST", "/auth/v1/admin/invitations/i-1/resend"),
    ("GET", "/auth/v1/public-keys"),
    ("POST", "/codes/v1/codes"),
    ("POST", "/codes/v1/import"),
    ("GET", "/storage/v1/studies"),
    ("POST", "/storage/v1/packages"),
    ("DELETE", "/storage/v1/studies/s-1"),
    ("GET", "/dlx/v1/list"),
    ("GET", "/dlx/v1/downloadall"),
    ("POST", "/dlx/v1/token/ABCD"),  # public only as GET
    ("GET", "/dlx/v1/token/ABCD/extra"),
]


@pytest.mark.parametrize(("method", "path"), NOT_PUBLIC)
async def test_every_other_route_needs_a_token(
    gateway: httpx.AsyncClient, upstreams: Upstreams, method: str, path: str
) -> None:
    _assert_unauthorized(await gateway.request(method, path))
    assert all(state.requests == [] for state in upstreams.states.values())


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json", "/c/ABCD-EFGH-JKMN"])
async def test_gateway_public_routes_need_no_token(gateway: httpx.AsyncClient, path: str) -> None:
    response = await gateway.get(path)
    assert response.status_code in (200, 302), response.text


async def test_unknown_kid_refreshes_the_jwks_at_most_once_per_interval(
    upstreams: Upstreams,
) -> None:
    auth = upstreams.states["auth"]
    rotated = TestIssuer(issuer=upstreams.issuer.issuer, kid="rotated-key")
    settings = gateway_settings(upstreams, jwks_min_refresh_seconds=3600)
    async with running_gateway(settings) as client:
        before = auth.jwks_fetches
        ok = await client.get("/storage/v1/x", headers=bearer(upstreams.issuer.mint("a")))
        assert ok.status_code == 200
        assert auth.jwks_fetches == before + 1
        # Forged kids within the interval do not reach the identity service again.
        for n in range(5):
            stranger = TestIssuer(issuer=upstreams.issuer.issuer, kid=f"forged-{n}")
            _assert_unauthorized(
                await client.get("/storage/v1/x", headers=bearer(stranger.mint("a")))
            )
        # A key published meanwhile is not seen before the interval has passed either.
        upstreams.extra_keys.extend(rotated.jwks["keys"])
        _assert_unauthorized(await client.get("/storage/v1/x", headers=bearer(rotated.mint("a"))))
        assert auth.jwks_fetches == before + 1
        # Known keys keep working from the cache.
        ok = await client.get("/storage/v1/x", headers=bearer(upstreams.issuer.mint("a")))
        assert ok.status_code == 200
        assert auth.jwks_fetches == before + 1


async def test_rotated_key_is_picked_up_on_unknown_kid(upstreams: Upstreams) -> None:
    auth = upstreams.states["auth"]
    rotated = TestIssuer(issuer=upstreams.issuer.issuer, kid="rotated-key")
    settings = gateway_settings(upstreams, jwks_min_refresh_seconds=0)
    async with running_gateway(settings) as client:
        ok = await client.get("/storage/v1/x", headers=bearer(upstreams.issuer.mint("a")))
        assert ok.status_code == 200
        before = auth.jwks_fetches
        upstreams.extra_keys.extend(rotated.jwks["keys"])
        response = await client.get("/storage/v1/x", headers=bearer(rotated.mint("a")))
        assert response.status_code == 200, response.text
        assert auth.jwks_fetches == before + 1
