"""hds_common.tokens: what every service relies on to trust a bearer token."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from jose import jwt

from hds_common.errors import Unauthorized
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import (
    ACCOUNT_AUDIENCE,
    DLX_AUDIENCE,
    JwksClient,
    TokenVerifier,
    bearer_token,
)


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def verifier(issuer: TestIssuer) -> TokenVerifier:
    return TokenVerifier(issuer=issuer.issuer, keys=issuer.keys())


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_token(issuer: TestIssuer, verifier: TokenVerifier) -> None:
    claims = await verifier.verify(
        issuer.mint("acc-1", roles=["patient"], grant="g"), audience=ACCOUNT_AUDIENCE
    )
    assert claims.sub == "acc-1"
    assert claims.roles == ["patient"]
    assert claims.grant == "g"


async def test_forgeries_rejected(issuer: TestIssuer, verifier: TokenVerifier) -> None:
    good = issuer.mint("acc-1")
    header_b64, _payload_b64, signature = good.split(".")
    now = int(time.time())
    payload = {"iss": issuer.issuer, "aud": ACCOUNT_AUDIENCE, "sub": "x", "exp": now + 600}
    public_pem_jwk = issuer.jwks["keys"][0]
    forgeries = {
        "alg none": f"{_b64({'alg': 'none', 'kid': issuer.kid})}.{_b64(payload)}.",
        "hs256 with public key": jwt.encode(
            payload,
            json.dumps(public_pem_jwk),
            algorithm="HS256",
            headers={"kid": issuer.kid},
        ),
        "expired": issuer.mint("acc-1", ttl=-120),
        "wrong audience": issuer.mint("acc-1", audience=DLX_AUDIENCE),
        "wrong issuer": TestIssuer(issuer="someone-else", kid=issuer.kid).mint("acc-1"),
        "unknown kid": TestIssuer(kid="other-kid").mint("acc-1"),
        "tampered payload": f"{header_b64}.{_b64({**payload, 'sub': 'admin'})}.{signature}",
        "garbage": "not-a-token",
    }
    for name, token in forgeries.items():
        with pytest.raises(Unauthorized) as excinfo:
            await verifier.verify(token, audience=ACCOUNT_AUDIENCE)
        assert excinfo.value.headers["WWW-Authenticate"].startswith("Bearer"), name


async def test_clock_skew_tolerated_up_to_30_seconds(
    issuer: TestIssuer, verifier: TokenVerifier
) -> None:
    await verifier.verify(issuer.mint("acc-1", ttl=-20), audience=ACCOUNT_AUDIENCE)
    with pytest.raises(Unauthorized):
        await verifier.verify(issuer.mint("acc-1", ttl=-40), audience=ACCOUNT_AUDIENCE)
    with pytest.raises(ValueError, match="clock skew"):
        TokenVerifier(issuer="x", keys=issuer.keys(), leeway=60)


async def test_jwks_client_refetches_on_unknown_kid_at_most_once_per_interval() -> None:
    first, second = TestIssuer(kid="k1"), TestIssuer(kid="k2")
    published = {"keys": first.jwks["keys"]}
    fetches = 0

    def handler(_: httpx.Request) -> httpx.Response:
        nonlocal fetches
        fetches += 1
        return httpx.Response(200, json=published)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        jwks = JwksClient("http://auth/.well-known/jwks.json", client, min_refresh_interval=3600)
        verifier = TokenVerifier(issuer="hds-auth", keys=jwks)
        await verifier.verify(first.mint("a"), audience=ACCOUNT_AUDIENCE)
        assert fetches == 1
        published = {"keys": first.jwks["keys"] + second.jwks["keys"]}
        # A new kid inside the refresh interval is not fetched again: forged kids
        # cannot make the services hammer the identity service.
        with pytest.raises(Unauthorized):
            await verifier.verify(second.mint("a"), audience=ACCOUNT_AUDIENCE)
        assert fetches == 1
        await jwks.refresh()
        await verifier.verify(second.mint("a"), audience=ACCOUNT_AUDIENCE)
        assert fetches == 2


def test_bearer_token_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in (None, "", "Basic abc", "Bearer ", "abc"):
        with pytest.raises(Unauthorized):
            bearer_token(bad)
