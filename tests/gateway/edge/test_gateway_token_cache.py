"""The verified-token cache of TokenVerifier the gateway turns on: no second signature
check for the same token, but every rule still holds on a cache hit."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from jose import jwt as jose_jwt

from hds_common import tokens
from hds_common.errors import Unauthorized
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import DLX_AUDIENCE, TokenVerifier


class MutableKeys:
    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self.keys = {key["kid"]: key for key in jwks["keys"]}

    async def get_key(self, kid: str) -> Mapping[str, Any] | None:
        return self.keys.get(kid)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tokens whose signature was actually checked."""
    checked: list[str] = []
    real_decode = jose_jwt.decode

    def counting_decode(token: str, *args: Any, **kwargs: Any) -> Any:
        checked.append(token)
        return real_decode(token, *args, **kwargs)

    monkeypatch.setattr(jose_jwt, "decode", counting_decode)
    return checked


async def test_same_token_is_verified_once(decodes: list[str]) -> None:
    issuer = TestIssuer()
    verifier = TokenVerifier(issuer=issuer.issuer, keys=issuer.keys(), cache_size=8)
    token = issuer.mint("alice", roles=["patient"])
    first = await verifier.verify(token, audience="hds-account")
    second = await verifier.verify(token, audience="hds-account")
    assert first == second
    assert second.sub == "alice"
    assert decodes == [token]


async def test_without_cache_every_request_is_verified(decodes: list[str]) -> None:
    issuer = TestIssuer()
    verifier = TokenVerifier(issuer=issuer.issuer, keys=issuer.keys())
    token = issuer.mint("alice")
    for _ in range(3):
        await verifier.verify(token, audience="hds-account")
    assert decodes == [token] * 3


async def test_cache_hit_does_not_cross_audiences() -> None:
    issuer = TestIssuer()
    verifier = TokenVerifier(issuer=issuer.issuer, keys=issuer.keys(), cache_size=8)
    token = issuer.mint("alice")
    await verifier.verify(token, audience="hds-account")
    with pytest.raises(Unauthorized):
        await verifier.verify(token, audience=DLX_AUDIENCE)


async def test_withdrawn_key_invalidates_cached_tokens() -> None:
    issuer = TestIssuer()
    keys = MutableKeys(issuer.jwks)
    verifier = TokenVerifier(issuer=issuer.issuer, keys=keys, cache_size=8)
    token = issuer.mint("alice")
    await verifier.verify(token, audience="hds-account")
    keys.keys.clear()
    with pytest.raises(Unauthorized):
        await verifier.verify(token, audience="hds-account")


async def test_cached_token_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    issuer = TestIssuer()
    verifier = TokenVerifier(issuer=issuer.issuer, keys=issuer.keys(), cache_size=8)
    token = issuer.mint("alice", ttl=60)
    await verifier.verify(token, audience="hds-account")
    # Both clocks (the cache's and python-jose's) move past expiry plus the 30 s skew.
    later = time.time() + 60 + 31

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Later:
            return cls.fromtimestamp(later, tz or UTC)

    monkeypatch.setattr(tokens, "time", SimpleNamespace(time=lambda: later))
    monkeypatch.setattr(jose_jwt, "datetime", Later)
    with pytest.raises(Unauthorized):
        await verifier.verify(token, audience="hds-account")


async def test_cache_is_bounded(decodes: list[str]) -> None:
    issuer = TestIssuer()
    verifier = TokenVerifier(issuer=issuer.issuer, keys=issuer.keys(), cache_size=2)
    first, second, third = (issuer.mint(name) for name in ("a", "b", "c"))
    for token in (first, second, third, first):
        await verifier.verify(token, audience="hds-account")
    # ``first`` was evicted by ``third`` and had to be checked again.
    assert decodes == [first, second, third, first]
