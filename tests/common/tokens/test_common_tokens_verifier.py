"""hds_common.tokens: what every service relies on to trust a bearer token."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from jose import jwt

from hds_common.errors import BadGateway, Unauthorized
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import (
    ACCOUNT_AUDIENCE,
    DLX_AUDIENCE,
    JwksClient,
    StorageSessions,
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


# -- session liveness -------------------------------------------------------------------------


class SessionSource:
    """The storage service's liveness route over httpx's mock transport: which sessions
    are live, and every id asked."""

    def __init__(self) -> None:
        self.live: set[str] = set()
        self.asked: list[str] = []
        self.down = False

    def client(self) -> httpx.AsyncClient:
        def answer(request: httpx.Request) -> httpx.Response:
            if self.down:
                raise httpx.ConnectError("storage is down", request=request)
            session_id = request.url.path.rsplit("/", 1)[-1]
            self.asked.append(session_id)
            return httpx.Response(200 if session_id in self.live else 404, json={})

        return httpx.AsyncClient(base_url="http://storage", transport=httpx.MockTransport(answer))


SESSION = "0123456789abcdef0123456789abcdef"


async def test_a_live_session_is_asked_once_per_check_interval(issuer: TestIssuer) -> None:
    source = SessionSource()
    source.live.add(SESSION)
    async with source.client() as client:
        verifier = TokenVerifier(
            issuer=issuer.issuer,
            keys=issuer.keys(),
            liveness=StorageSessions(client),
            liveness_ttl=60,
        )
        for _ in range(5):
            token = issuer.mint("acc-1", ksid=SESSION)
            assert (await verifier.verify(token, audience=ACCOUNT_AUDIENCE)).ksid == SESSION
    assert source.asked == [SESSION]


async def test_an_ended_session_is_refused_once_the_last_answer_is_old(issuer: TestIssuer) -> None:
    source = SessionSource()
    source.live.add(SESSION)
    token = issuer.mint("acc-1", ksid=SESSION, audience=DLX_AUDIENCE)
    async with source.client() as client:
        verifier = TokenVerifier(
            issuer=issuer.issuer,
            keys=issuer.keys(),
            cache_size=8,
            liveness=StorageSessions(client),
            liveness_ttl=0.2,
        )
        await verifier.verify(token, audience=DLX_AUDIENCE)
        source.live.clear()  # logout, revocation...
        time.sleep(0.25)
        with pytest.raises(Unauthorized, match="ended"):
            await verifier.verify(token, audience=DLX_AUDIENCE)
        # Also from the token cache of a verifier that remembers signatures.
        with pytest.raises(Unauthorized, match="ended"):
            await verifier.verify(token, audience=DLX_AUDIENCE)


async def test_an_unreachable_session_source_fails_closed(issuer: TestIssuer) -> None:
    source = SessionSource()
    source.down = True
    async with source.client() as client:
        verifier = TokenVerifier(
            issuer=issuer.issuer, keys=issuer.keys(), liveness=StorageSessions(client)
        )
        with pytest.raises(BadGateway) as raised:
            await verifier.verify(issuer.mint("acc-1", ksid=SESSION), audience=ACCOUNT_AUDIENCE)
    assert raised.value.slug == "storage-unavailable"


@pytest.mark.parametrize("ksid", ["", "../../internal", "A" * 32, "ab" * 40])
async def test_a_malformed_session_id_is_refused_unasked(issuer: TestIssuer, ksid: str) -> None:
    source = SessionSource()
    async with source.client() as client:
        verifier = TokenVerifier(
            issuer=issuer.issuer, keys=issuer.keys(), liveness=StorageSessions(client)
        )
        with pytest.raises(Unauthorized, match="malformed"):
            await verifier.verify(issuer.mint("acc-1", ksid=ksid), audience=ACCOUNT_AUDIENCE)
    assert source.asked == []
