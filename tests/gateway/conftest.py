"""Fixtures of the gateway tests: the upstream stand-ins and a shared gateway."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from hds_common.testing.tokens import TestIssuer
from tests.gateway.support import REDIS_URL, Upstreams, gateway_settings, running_gateway, serve
from tests.gateway.support_standin import UpstreamState, stand_in


@pytest.fixture(scope="session")
async def upstreams() -> AsyncIterator[Upstreams]:
    issuer = TestIssuer()
    extra_keys: list[dict[str, Any]] = []
    states = {name: UpstreamState(name) for name in ("auth", "codes", "storage", "dlx")}

    def keys() -> dict[str, Any]:
        return {"keys": [*issuer.jwks["keys"], *extra_keys]}

    async with (
        serve(stand_in(states["auth"], keys)) as auth,
        serve(stand_in(states["codes"], keys)) as codes,
        serve(stand_in(states["storage"], keys)) as storage,
        serve(stand_in(states["dlx"], keys)) as dlx,
    ):
        urls = {"auth": auth, "codes": codes, "storage": storage, "dlx": dlx}
        yield Upstreams(issuer, extra_keys, states, urls)
        # Let parked handlers finish so that the servers stop promptly.
        for state in states.values():
            state.release_slow.set()
            for gate in state.gates.values():
                gate.set()


@pytest.fixture(autouse=True)
def _reset_upstreams(upstreams: Upstreams) -> None:
    for state in upstreams.states.values():
        state.ready = True
        state.requests.clear()
        state.long_body_ports.clear()
        state.gates.clear()
        state.stream_closed = asyncio.Event()
        state.release_slow.set()  # nothing parked on the last test's event stays parked
        state.release_slow = asyncio.Event()
    upstreams.extra_keys.clear()


@pytest.fixture(scope="session")
async def gateway(upstreams: Upstreams) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway with default settings (rate limits off) shared by most tests."""
    async with running_gateway(gateway_settings(upstreams)) as client:
        yield client


@pytest.fixture
def account_token(upstreams: Upstreams) -> str:
    return str(upstreams.issuer.mint("account-1", roles=["patient"]))


@pytest.fixture
def dlx_token(upstreams: Upstreams) -> str:
    return str(upstreams.issuer.mint("code-1", audience="hds-dlx", pkg="package-1"))


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix private to this test; its keys are deleted afterwards."""
    prefix = f"hds-gateway-test:{uuid.uuid4().hex}:"
    yield prefix
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
