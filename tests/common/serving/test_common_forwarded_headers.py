"""Whose client address a service believes, as ``python -m hds_<service> serve`` runs it.

A service behind the gateway believes no ``X-Forwarded-For`` from anyone: pods share a
network and their addresses change, so an address allow-list cannot tell the gateway from
any other caller. It believes only the client address the gateway vouches for in
``X-HDS-Client`` (an HMAC under the suite's internal secret). The gateway, the edge,
believes ``X-Forwarded-For`` only from its trusted proxies (the ingress) and forwards the
address it really sees otherwise. Per-client limits key on that address, so it is
observed where it counts: the identity service's per-client login failure counters in
its database.

Every process listens on 127.0.0.1; clients connect from other loopback addresses
(127.0.0.0/8 is all local on Linux) to play peers the gateway does or does not trust.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from hds_common.forwarded_client import CLIENT_HEADER, mint_client_assertion
from hds_common.testing.ports import free_port_block
from hds_common.testing.postgres import temporary_database
from hds_common.testing.processes import stop_process

pytestmark = pytest.mark.postgres

LOOPBACK = "127.0.0.1"  # where the services listen, and the gateway's address towards auth
INGRESS = "127.0.0.3"  # the reverse proxy in front of the gateway (its trusted proxy)
STRANGER = "127.0.0.2"  # a client, or a pod, no one is told to believe
CLIENT_COUNTER = "login:client:"
SECRET = "forwarded-headers-test-secret"
_LISTENING = re.compile(r"Uvicorn running on (http://[\d.]+:\d+)")


@contextmanager
def running(name: str, env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m hds_<name> serve`` with its stderr (the JSON log) in ``log``."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", f"hds_{name}", "serve"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=output,
        )
    try:
        yield process
    finally:
        stop_process(process)


async def listening_url(process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> str:
    """The base URL uvicorn reports once the service has started (lifespan included)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and process.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{") and (found := _LISTENING.search(json.loads(line)["event"])):
                return found.group(1)
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{log.stem} did not start:\n{log.read_text(errors='replace')}")


@dataclass
class Suite:
    auth_url: str
    auth_database_url: str
    gateway_url: str


@pytest.fixture(scope="module")
async def suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    """The identity service behind the gateway, started at the same time."""
    var = tmp_path_factory.mktemp("forwarded")
    auth_port = free_port_block(1)
    common = {"HDS_ENVIRONMENT": "test", "HDS_INTERNAL_SECRET": SECRET}
    async with temporary_database("hds_forwarded_auth") as database_url:
        auth_env = {
            **common,
            # What the services believed before: had it any effect, a peer at 127.0.0.1
            # could name any client in X-Forwarded-For.
            "HDS_FORWARDED_ALLOW_IPS": f"{LOOPBACK},{STRANGER}",
            "HDS_AUTH_HOST": LOOPBACK,
            "HDS_AUTH_PORT": str(auth_port),
            "HDS_AUTH_DATABASE_URL": database_url,
            "HDS_AUTH_SIGNING_KEY_DIR": str(var / "keys"),
            "HDS_AUTH_OUTBOX_DIR": str(var / "outbox"),
            "HDS_AUTH_SMTP_HOST": "",
            "HDS_AUTH_ARGON2_TIME_COST": "1",
            "HDS_AUTH_ARGON2_MEMORY_KIB": "1024",
        }
        gateway_env = {
            **common,
            "HDS_FORWARDED_ALLOW_IPS": f"{LOOPBACK},{STRANGER}",
            "HDS_GATEWAY_TRUSTED_PROXIES": INGRESS,
            "HDS_AUTH_URL": f"http://{LOOPBACK}:{auth_port}",
            "HDS_GATEWAY_HOST": LOOPBACK,
            "HDS_GATEWAY_PORT": "0",
        }
        auth_log, gateway_log = var / "auth.log", var / "gateway.log"
        with ExitStack() as processes:
            auth = processes.enter_context(running("auth", auth_env, auth_log))
            gateway = processes.enter_context(running("gateway", gateway_env, gateway_log))
            auth_url, gateway_url = await asyncio.gather(
                listening_url(auth, auth_log), listening_url(gateway, gateway_log)
            )
            yield Suite(auth_url=auth_url, auth_database_url=database_url, gateway_url=gateway_url)


async def client_failures(database_url: str) -> Counter[str]:
    """Login failures per client address, as the identity service's throttle counts them."""
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT key, count FROM throttle_counters WHERE key LIKE $1", CLIENT_COUNTER + "%"
        )
    finally:
        await connection.close()
    return Counter({row["key"].removeprefix(CLIENT_COUNTER): row["count"] for row in rows})


async def failed_login(
    suite: Suite,
    url: str,
    *,
    local_address: str,
    forwarded_for: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Counter[str]:
    """A wrong login at ``url``, sent from ``local_address`` with an X-Forwarded-For claim
    (and ``headers``); the client addresses the identity service counted the failure
    against."""
    before = await client_failures(suite.auth_database_url)
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    sent = dict(headers or {})
    if forwarded_for is not None:
        sent["X-Forwarded-For"] = forwarded_for
    async with httpx.AsyncClient(transport=transport, base_url=url, timeout=10) as client:
        response = await client.post(
            "/auth/v1/login",
            # An address of its own per attempt: the per-account limit stays out of the way.
            json={"email": f"nobody-{uuid.uuid4().hex[:12]}@example.org", "password": "wrong"},
            headers=sent,
        )
    assert response.status_code == 401, response.text
    assert response.json()["type"] == "urn:hds:problem:invalid-credentials"
    return await client_failures(suite.auth_database_url) - before


async def test_the_gateway_forwards_the_address_it_sees_not_the_claimed_one(
    suite: Suite,
) -> None:
    counted = await failed_login(
        suite, suite.gateway_url, local_address=STRANGER, forwarded_for="203.0.113.30"
    )
    # The gateway replaced the claim with its peer, and vouched for that to the service.
    assert counted == {STRANGER: 1}


async def test_behind_the_ingress_each_client_counts_for_itself(suite: Suite) -> None:
    first = await failed_login(
        suite,
        suite.gateway_url,
        local_address=INGRESS,
        forwarded_for="198.51.100.99, 203.0.113.41",
    )
    second = await failed_login(
        suite, suite.gateway_url, local_address=INGRESS, forwarded_for="203.0.113.42"
    )
    # The hop the ingress appended names the client; what came before it is anyone's claim.
    assert first == {"203.0.113.41": 1}
    assert second == {"203.0.113.42": 1}


@pytest.mark.parametrize("peer", [LOOPBACK, STRANGER])
async def test_a_service_believes_no_x_forwarded_for_from_any_peer(suite: Suite, peer: str) -> None:
    # A pod next to the gateway (even at an address the old allow-list named) cannot
    # pick the address the per-client limits key on.
    counted = await failed_login(
        suite, suite.auth_url, local_address=peer, forwarded_for="203.0.113.20"
    )
    assert counted == {peer: 1}


async def test_a_service_believes_only_a_valid_gateway_assertion(suite: Suite) -> None:
    forged = mint_client_assertion("not-the-secret", address="203.0.113.50", proto="https")
    expired = mint_client_assertion(SECRET, address="203.0.113.51", proto="https", now=0)
    valid = mint_client_assertion(SECRET, address="203.0.113.52", proto="https")
    tampered = valid.replace("203.0.113.52", "203.0.113.53")
    # A peer of its own per attempt, each under the identity service's per-client limit.
    for number, value in enumerate((forged, expired, tampered, "v1.garbage", valid + "." + valid)):
        peer = f"127.0.0.{20 + number}"
        counted = await failed_login(
            suite, suite.auth_url, local_address=peer, headers={CLIENT_HEADER: value}
        )
        assert counted == {peer: 1}, value
    counted = await failed_login(
        suite,
        suite.auth_url,
        local_address="127.0.0.30",
        forwarded_for="198.51.100.1",
        headers={CLIENT_HEADER: valid},
    )
    assert counted == {"203.0.113.52": 1}
