"""Rate limits per client address and per token subject, in memory and shared through Redis."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from tests.gateway.support import REDIS_URL, Upstreams, bearer, gateway_settings, running_gateway

PROBLEM = "application/problem+json"


def _assert_limited(response: httpx.Response, window: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"] == "urn:hds:problem:rate-limited"
    assert 1 <= int(response.headers["retry-after"]) <= window


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_auth_endpoints_are_limited_per_address(
    upstreams: Upstreams, redis_prefix: str, backend: str
) -> None:
    settings = gateway_settings(
        upstreams,
        redis_url=REDIS_URL if backend == "redis" else None,
        rate_limit_key_prefix=redis_prefix,
        rate_limit_auth_per_address=3,
        rate_limit_api_per_address=100,
        trusted_proxies=["127.0.0.1"],
    )
    alice = {"X-Forwarded-For": "198.51.100.1"}
    bob = {"X-Forwarded-For": "198.51.100.2"}
    async with running_gateway(settings) as client:
        statuses = [
            (await client.post("/auth/v1/login", json={}, headers=alice)).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        _assert_limited(await client.post("/auth/v1/login", json={}, headers=alice), 60)
        # Access-code guessing counts against the same strict class.
        _assert_limited(await client.get("/dlx/v1/token/ABCD", headers=alice), 60)
        _assert_limited(await client.get("/c/ABCD", headers=alice), 60)
        # Another address has its own budget; the lenient class is untouched.
        assert (await client.post("/auth/v1/login", json={}, headers=bob)).status_code == 200
        assert (await client.get("/dlx/v1/api_info", headers=alice)).status_code == 200
    login_attempts = [s for s in upstreams.states["auth"].requests if s["path"].endswith("login")]
    assert len(login_attempts) == 4


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_api_is_limited_per_token_subject(
    upstreams: Upstreams, redis_prefix: str, backend: str
) -> None:
    settings = gateway_settings(
        upstreams,
        redis_url=REDIS_URL if backend == "redis" else None,
        rate_limit_key_prefix=redis_prefix,
        rate_limit_api_per_address=100,
        rate_limit_api_per_subject=2,
        rate_limit_window_seconds=30,
    )
    alice = bearer(upstreams.issuer.mint("alice"))
    bob = bearer(upstreams.issuer.mint("bob"))
    async with running_gateway(settings) as client:
        for _ in range(2):
            assert (await client.get("/storage/v1/studies", headers=alice)).status_code == 200
        _assert_limited(await client.get("/storage/v1/studies", headers=alice), 30)
        # A fresh token of the same subject does not reset the count.
        again = bearer(upstreams.issuer.mint("alice"))
        _assert_limited(await client.get("/codes/v1/codes", headers=again), 30)
        assert (await client.get("/storage/v1/studies", headers=bob)).status_code == 200


async def test_address_limit_applies_before_token_verification(
    upstreams: Upstreams,
) -> None:
    settings = gateway_settings(upstreams, rate_limit_api_per_address=2)
    async with running_gateway(settings) as client:
        forged = {"Authorization": "Bearer forged.token.value"}
        assert (await client.get("/storage/v1/studies", headers=forged)).status_code == 401
        assert (await client.get("/storage/v1/studies", headers=forged)).status_code == 401
        _assert_limited(await client.get("/storage/v1/studies", headers=forged), 60)


async def test_redis_limits_are_shared_between_replicas(
    upstreams: Upstreams, redis_prefix: str
) -> None:
    settings = gateway_settings(
        upstreams,
        redis_url=REDIS_URL,
        rate_limit_key_prefix=redis_prefix,
        rate_limit_auth_per_address=4,
    )
    async with running_gateway(settings) as one, running_gateway(settings) as two:
        for client in (one, two, one, two):
            assert (await client.post("/auth/v1/login", json={})).status_code == 200
        _assert_limited(await one.post("/auth/v1/login", json={}), 60)
        _assert_limited(await two.post("/auth/v1/login", json={}), 60)
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=redis_prefix + "*")]
        assert keys == [f"{redis_prefix}auth:address:127.0.0.1".encode()]
        assert 0 < await redis.ttl(keys[0]) <= 60
    finally:
        await redis.aclose()


async def test_unreachable_redis_fails_open(upstreams: Upstreams, redis_prefix: str) -> None:
    settings = gateway_settings(
        upstreams,
        redis_url="redis://127.0.0.1:1/0",
        rate_limit_key_prefix=redis_prefix,
        rate_limit_auth_per_address=1,
    )
    async with running_gateway(settings) as client:
        for _ in range(3):
            assert (await client.post("/auth/v1/login", json={})).status_code == 200
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("failed")
