"""Long downloads: bodies of at least ``DIRECT_READ_MIN_BYTES`` with a Content-Length are
read from the upstream's socket by the proxy itself. Whole, ranged, cut short, stalled,
abandoned by the client, and with aiohttp holding part of the body when the proxy takes
the connection over; on the tests' asyncio loop and on uvloop (what production runs)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvloop
from multidict import CIMultiDict
from starlette.types import Message

from hds_common.direct_body import DIRECT_READ_MIN_BYTES
from hds_gateway.proxy.upstream import UpstreamPool, UpstreamRequest, send_upstream
from tests.gateway.support import Upstreams, bearer, gateway_settings, running_gateway
from tests.gateway.support_standin import (
    BLOB,
    LOCKSTEP_HEAD,
    LOCKSTEP_PIECE,
    LOCKSTEP_STEPS,
    LONG_BODY,
)

MIB = 1024 * 1024
# Long enough for a loaded machine, short enough for the stall test.
READ_TIMEOUT = 2.0
LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(scope="module", params=LOOPS)
async def long_gateway(
    request: pytest.FixtureRequest, upstreams: Upstreams
) -> AsyncIterator[httpx.AsyncClient]:
    settings = gateway_settings(upstreams, upstream_read_timeout_seconds=READ_TIMEOUT)
    async with running_gateway(settings, on_uvloop=request.param == "uvloop") as client:
        yield client


async def _download(client: httpx.AsyncClient, path: str, token: str, pieces: list[int]) -> None:
    """GET ``path``, noting the length of every piece of the body as it arrives."""
    async with client.stream("GET", path, headers=bearer(token)) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            pieces.append(len(chunk))


def test_the_long_body_takes_the_direct_path() -> None:
    assert len(LONG_BODY) >= 4 * DIRECT_READ_MIN_BYTES
    assert len(BLOB) < DIRECT_READ_MIN_BYTES


async def test_long_download_arrives_intact(
    long_gateway: httpx.AsyncClient, upstreams: Upstreams, account_token: str
) -> None:
    storage = upstreams.states["storage"]
    for _ in range(2):
        response = await long_gateway.get("/storage/v1/long/whole", headers=bearer(account_token))
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(LONG_BODY))
        assert response.headers["accept-ranges"] == "bytes"
        assert hashlib.sha256(response.content).digest() == hashlib.sha256(LONG_BODY).digest()
        # The same client connection carries on after a long download.
        small = await long_gateway.get("/storage/v1/blob", headers=bearer(account_token))
        assert small.content == BLOB
    # aiohttp never saw the end of those messages: each long download had its own upstream
    # connection, closed afterwards rather than pooled.
    assert len(storage.long_body_ports) == 2
    assert storage.long_body_ports[0] != storage.long_body_ports[1]


async def test_ranges_and_head_of_long_bodies(
    long_gateway: httpx.AsyncClient, account_token: str
) -> None:
    start, end = 1000, 1000 + 5 * MIB
    part = await long_gateway.get(
        "/storage/v1/long/whole",
        headers={**bearer(account_token), "Range": f"bytes={start}-{end}"},
    )
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes {start}-{end}/{len(LONG_BODY)}"
    assert part.headers["content-length"] == str(end + 1 - start)
    assert part.content == LONG_BODY[start : end + 1]

    head = await long_gateway.head("/storage/v1/long/whole", headers=bearer(account_token))
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(LONG_BODY))
    assert head.content == b""
    after = await long_gateway.get("/storage/v1/long/whole", headers=bearer(account_token))
    assert after.content == LONG_BODY


async def test_small_pieces_pass_on_without_waiting_for_more(
    long_gateway: httpx.AsyncClient, upstreams: Upstreams, account_token: str
) -> None:
    """The direct reads never hold a piece back to wait for more: here the upstream sends
    each small piece only once the client has everything before it, so a gateway that
    waited for more would never finish."""
    storage = upstreams.states["storage"]
    for step in range(LOCKSTEP_STEPS):  # fresh gates for each event loop's run
        storage.gates.pop(f"lockstep-{step}", None)
    received = bytearray()
    released = 0
    async with (
        asyncio.timeout(30),
        long_gateway.stream(
            "GET", "/storage/v1/long/lockstep", headers=bearer(account_token)
        ) as response,
    ):
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            received += chunk
            if released < LOCKSTEP_STEPS and len(received) == (
                LOCKSTEP_HEAD + released * LOCKSTEP_PIECE
            ):
                storage.gate(f"lockstep-{released}").set()
                released += 1
    assert released == LOCKSTEP_STEPS
    assert bytes(received) == LONG_BODY[: LOCKSTEP_HEAD + LOCKSTEP_STEPS * LOCKSTEP_PIECE]


async def test_upstream_closing_mid_body_cuts_the_download_short(
    long_gateway: httpx.AsyncClient, account_token: str
) -> None:
    pieces: list[int] = []
    with pytest.raises(httpx.RemoteProtocolError):
        await _download(long_gateway, "/storage/v1/long/cut", account_token, pieces)
    assert 0 < sum(pieces) < len(LONG_BODY)
    # The gateway serves on as before.
    response = await long_gateway.get("/storage/v1/long/whole", headers=bearer(account_token))
    assert response.content == LONG_BODY


async def test_upstream_stalling_mid_long_body_cuts_the_download_short(
    long_gateway: httpx.AsyncClient, upstreams: Upstreams, account_token: str
) -> None:
    pieces: list[int] = []
    with pytest.raises(httpx.RemoteProtocolError):
        await _download(long_gateway, "/storage/v1/long/stall", account_token, pieces)
    upstreams.states["storage"].release_slow.set()
    # Everything before the stall arrived, then the connection was cut.
    assert sum(pieces) == 6 * MIB


async def test_client_going_away_stops_a_long_download(
    long_gateway: httpx.AsyncClient, upstreams: Upstreams, account_token: str
) -> None:
    storage = upstreams.states["storage"]
    async with long_gateway.stream(
        "GET", "/storage/v1/long/endless", headers=bearer(account_token)
    ) as response:
        assert response.headers["content-length"] == str(1 << 40)
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > 16 * MIB:
                break
    # The client closed the connection; the gateway stops reading, the upstream notices.
    await asyncio.wait_for(storage.stream_closed.wait(), timeout=10)


async def _download_after_aiohttp_paused(urls: dict[str, str]) -> list[Message]:
    """One long download through the proxy's own code, taken over only once aiohttp has
    filled its buffer and paused; the ASGI messages it sent."""
    read_bufsize = 64 * 1024
    pool = UpstreamPool(
        urls,
        connect_timeout=5,
        read_timeout=5,
        max_connections=4,
        keepalive=4,
        buffer_size=read_bufsize,
    )
    scope: dict[str, Any] = {"type": "http", "headers": []}
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client never goes away
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        request = UpstreamRequest(
            upstream="storage",
            method="GET",
            raw_path="/storage/v1/long/whole",
            query="",
            headers=CIMultiDict(),
            body_limit=0,
        )
        response = await send_upstream(pool, request, scope, receive)
        content = response._upstream.content  # what aiohttp has taken in so far
        for _ in range(500):
            if content.total_bytes > 2 * read_bufsize:
                break
            await asyncio.sleep(0.01)
        # aiohttp read beyond its mark and paused: part of the body sits in its buffer,
        # possibly more in its parser.
        assert content.total_bytes > 2 * read_bufsize
        await response(scope, receive, send)
    finally:
        await pool.close()
    return sent


@pytest.mark.parametrize("loop", LOOPS)
async def test_takeover_keeps_what_aiohttp_had_read(upstreams: Upstreams, loop: str) -> None:
    if loop == "uvloop":
        sent = await asyncio.to_thread(uvloop.run, _download_after_aiohttp_paused(upstreams.urls))
    else:
        sent = await _download_after_aiohttp_paused(upstreams.urls)
    assert sent[0]["type"] == "http.response.start"
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    body = b"".join(message["body"] for message in sent[1:])
    assert len(body) == len(LONG_BODY)
    assert body == LONG_BODY
