"""The streaming proxy over real HTTP: no buffering either way, headers, ranges, body limits,
502/504 for a stopped or slow upstream."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from hds_common.forwarded_client import (
    CLIENT_HEADER,
    mint_client_assertion,
    verify_client_assertion,
)
from tests.gateway.support import (
    Upstreams,
    bearer,
    gateway_settings,
    header_values,
    raw_request,
    running_gateway,
    serve,
)
from tests.gateway.support_standin import BLOB, ETAG, UpstreamState, stand_in

PROBLEM = "application/problem+json"
MIB = 1024 * 1024


async def test_routes_by_prefix(
    gateway: httpx.AsyncClient, account_token: str, dlx_token: str
) -> None:
    cases = {
        "/auth/v1/me": ("auth", account_token),
        "/.well-known/openid-configuration": ("auth", account_token),
        "/codes/v1/codes": ("codes", account_token),
        "/storage/v1/usage": ("storage", account_token),
        "/dlx/v1/list": ("dlx", dlx_token),
    }
    for path, (service, token) in cases.items():
        response = await gateway.get(path, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["service"] == service
        assert response.json()["path"] == path


@pytest.mark.parametrize(
    "path",
    [
        "/internal/v1/validate",
        "/internal",
        "/internal/",
        "/unknown/v1/x",
        "/auth",
        "/auth/../internal/v1/dlx-tokens",
        "/auth/%2e%2e/internal/v1/dlx-tokens",
        "/storage/v1/./x",
        "//internal/v1/x",
    ],
)
async def test_internal_and_unknown_routes_are_404(
    gateway: httpx.AsyncClient, upstreams: Upstreams, account_token: str, path: str
) -> None:
    status, body = await raw_request(str(gateway.base_url), path, bearer(account_token))
    assert status == 404, (path, body)
    assert json.loads(body)["type"] == "urn:hds:problem:route-not-found"
    assert all(state.requests == [] for state in upstreams.states.values())


async def test_raw_path_and_query_pass_unchanged(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    response = await gateway.get(
        "/storage/v1/objects/a%20b%2Fc",
        params={"item": ["1", "2"], "q": "ä&x"},
        headers=bearer(account_token),
    )
    seen = response.json()
    assert seen["raw_path"] == "/storage/v1/objects/a%20b%2Fc"
    assert seen["query"] == "item=1&item=2&q=%C3%A4%26x"


async def test_paths_with_encoded_line_breaks_are_forwarded(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    """An encoded line break in the path is the upstream's to judge, not a 404 here."""
    response = await gateway.get("/storage/v1/objects/a%0Ab%0A", headers=bearer(account_token))
    assert response.status_code == 200, response.text
    assert response.json()["raw_path"] == "/storage/v1/objects/a%0Ab%0A"


async def test_response_is_streamed_not_buffered(
    gateway: httpx.AsyncClient, upstreams: Upstreams, account_token: str
) -> None:
    """The upstream sends its second chunk only after the client got the first one: a
    gateway that buffered the body would never deliver anything."""
    storage = upstreams.states["storage"]
    async with gateway.stream(
        "GET", "/storage/v1/gated", headers=bearer(account_token)
    ) as response:
        assert response.status_code == 200
        chunks = response.aiter_raw()
        first = await asyncio.wait_for(anext(chunks), timeout=5)
        assert first == b"first-chunk;"
        storage.gate("response").set()
        rest = b"".join([chunk async for chunk in chunks])
    assert rest == b"second-chunk"


async def test_request_body_is_streamed_not_buffered(
    gateway: httpx.AsyncClient, upstreams: Upstreams, account_token: str
) -> None:
    """The client sends its second part only once the upstream has seen the first."""
    storage = upstreams.states["storage"]

    async def body() -> AsyncIterator[bytes]:
        yield b"part-one;"
        await asyncio.wait_for(storage.gate("upload").wait(), timeout=5)
        yield b"part-two"

    response = await gateway.post(
        "/storage/v1/gated-upload", content=body(), headers=bearer(account_token)
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"received": "part-one;part-two"}


async def test_large_bodies_arrive_intact_both_ways(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    payload = os.urandom(8 * MIB)
    upload = await gateway.post(
        "/storage/v1/packages/p-1/instances",
        content=payload,
        headers={**bearer(account_token), "Content-Type": "application/dicom"},
    )
    assert upload.status_code == 200, upload.text
    seen = upload.json()
    assert seen["body_size"] == len(payload)
    assert seen["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert header_values(seen, "content-length") == [str(len(payload))]
    assert header_values(seen, "content-type") == ["application/dicom"]

    async def chunked() -> AsyncIterator[bytes]:
        for offset in range(0, len(payload), MIB):
            yield payload[offset : offset + MIB]

    upload = await gateway.post(
        "/storage/v1/packages/p-1/documents", content=chunked(), headers=bearer(account_token)
    )
    assert upload.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()

    download = await gateway.get("/storage/v1/blob", headers=bearer(account_token))
    assert download.content == BLOB


async def test_range_headers_pass_untouched(gateway: httpx.AsyncClient, account_token: str) -> None:
    full = await gateway.get("/storage/v1/blob", headers=bearer(account_token))
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["etag"] == ETAG
    assert full.headers["content-length"] == str(len(BLOB))
    assert full.headers["content-disposition"] == 'attachment; filename="blob.bin"'
    part = await gateway.get(
        "/storage/v1/blob",
        headers={**bearer(account_token), "Range": "bytes=100-199", "If-Range": ETAG},
    )
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(BLOB)}"
    assert part.headers["content-length"] == "100"
    assert part.content == BLOB[100:200]
    stale = await gateway.get(
        "/storage/v1/blob",
        headers={**bearer(account_token), "Range": "bytes=100-199", "If-Range": '"other"'},
    )
    assert stale.status_code == 200
    assert len(stale.content) == len(BLOB)


async def test_bodiless_answers_one_after_another(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    """HEAD, 204, 304 and empty 200 answers, several of each: aiohttp hands them all the
    same empty payload object, which once made the proxy spin from the second one on."""
    for _ in range(3):
        head = await gateway.head("/storage/v1/blob", headers=bearer(account_token))
        assert head.status_code == 200
        assert head.content == b""
        for status in (204, 304, 200):
            response = await gateway.get(
                f"/storage/v1/empty/{status}", headers=bearer(account_token)
            )
            assert response.status_code == status
            assert response.headers["etag"] == ETAG
            assert response.content == b""
    after = await gateway.get("/storage/v1/blob", headers=bearer(account_token))
    assert after.content == BLOB


async def test_hop_by_hop_headers_are_removed_both_ways(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    response = await gateway.get(
        "/storage/v1/echo",
        headers={
            **bearer(account_token),
            "Connection": "keep-alive, X-Client-Hop",
            "X-Client-Hop": "private",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "Trailer": "X-Checksum",
            "Upgrade": "websocket",
            "Proxy-Authorization": "Basic c2VjcmV0",
            "X-HDS-Service-Token": "v1.storage.9999999999.forged",
            "X-HDS-Grant": "forged",
            "X-End-To-End": "kept",
        },
    )
    seen = response.json()
    names = {name for name, _ in seen["headers"]}
    for hop in (
        "x-client-hop",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "x-hds-service-token",
        "x-hds-grant",
    ):
        assert hop not in names, hop
    assert header_values(seen, "connection") != ["keep-alive, X-Client-Hop"]
    assert header_values(seen, "x-end-to-end") == ["kept"]

    response = await gateway.get("/storage/v1/hop-by-hop", headers=bearer(account_token))
    assert response.status_code == 200
    for hop in ("x-private-hop", "keep-alive", "proxy-authenticate", "upgrade"):
        assert hop not in response.headers, hop
    assert response.headers["x-end-to-end"] == "kept"
    assert response.headers.get("connection", "keep-alive") == "keep-alive"


async def test_forwarded_headers_and_request_id(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    response = await gateway.get(
        "/storage/v1/echo",
        headers={
            **bearer(account_token),
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
            "X-Request-ID": "req-1234",
        },
    )
    seen = response.json()
    # Not from a trusted proxy: the client's own claims are replaced, not extended.
    assert header_values(seen, "x-forwarded-for") == ["127.0.0.1"]
    assert header_values(seen, "x-forwarded-proto") == ["http"]
    assert header_values(seen, "x-forwarded-host") == [gateway.base_url.netloc.decode()]
    assert header_values(seen, "x-request-id") == ["req-1234"]
    assert response.headers["x-request-id"] == "req-1234"
    assert response.headers.get_list("x-request-id") == ["req-1234"]
    # The gateway's own Date/Server only, not the upstream's as well.
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) <= 1

    generated = await gateway.get("/storage/v1/echo", headers=bearer(account_token))
    request_id = generated.headers["x-request-id"]
    assert header_values(generated.json(), "x-request-id") == [request_id]


async def test_trusted_proxy_chain_is_extended(upstreams: Upstreams) -> None:
    settings = gateway_settings(upstreams, trusted_proxies=["127.0.0.0/8"])
    token = upstreams.issuer.mint("account-1")
    async with running_gateway(settings) as client:
        response = await client.get(
            "/storage/v1/echo",
            headers={
                **bearer(token),
                "X-Forwarded-For": "203.0.113.9, 10.0.0.1",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "portal.example",
            },
        )
    seen = response.json()
    assert header_values(seen, "x-forwarded-for") == ["203.0.113.9, 10.0.0.1, 127.0.0.1"]
    assert header_values(seen, "x-forwarded-proto") == ["https"]
    assert header_values(seen, "x-forwarded-host") == ["portal.example"]


async def test_the_gateway_signs_the_client_address_it_believes(upstreams: Upstreams) -> None:
    secret = "gateway-test-internal-secret"
    settings = gateway_settings(
        upstreams,
        trusted_proxies=["127.0.0.0/8"],
        suite=upstreams.suite().model_copy(update={"internal_secret": SecretStr(secret)}),
    )
    token = upstreams.issuer.mint("account-1")
    forged = mint_client_assertion("a-guessed-secret", address="192.0.2.66", proto="https")
    async with running_gateway(settings) as client:
        response = await client.get(
            "/storage/v1/echo",
            headers={
                **bearer(token),
                "X-Forwarded-For": "198.51.100.1, 203.0.113.9",
                "X-Forwarded-Proto": "https",
                CLIENT_HEADER: forged,
            },
        )
    seen = response.json()
    # The client's own X-HDS-Client is dropped; the gateway's names the client it believes.
    (assertion,) = header_values(seen, CLIENT_HEADER.lower())
    assert assertion != forged
    assert verify_client_assertion(secret, assertion) == ("203.0.113.9", "https")


async def test_cookies_of_one_client_never_reach_another(
    gateway: httpx.AsyncClient, account_token: str
) -> None:
    first = await gateway.get("/storage/v1/set-cookie", headers=bearer(account_token))
    assert "session=alice" in first.headers["set-cookie"]
    gateway.cookies.clear()
    second = await gateway.get("/storage/v1/echo", headers=bearer(account_token))
    assert header_values(second.json(), "cookie") == []


async def test_body_over_the_limit_is_413_before_the_upstream_is_asked(
    upstreams: Upstreams,
) -> None:
    settings = gateway_settings(upstreams, max_body_bytes=1000, max_ingest_body_bytes=5000)
    token = upstreams.issuer.mint("account-1")
    async with running_gateway(settings) as client:
        declared = await client.post("/codes/v1/codes", content=b"x" * 1001, headers=bearer(token))
        assert declared.status_code == 413
        assert declared.headers["content-type"].startswith(PROBLEM)
        assert declared.json()["type"] == "urn:hds:problem:payload-too-large"

        async def chunked(size: int) -> AsyncIterator[bytes]:
            for _ in range(size // 100):
                yield b"y" * 100

        streamed = await client.post(
            "/codes/v1/codes", content=chunked(2000), headers=bearer(token)
        )
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["type"] == "urn:hds:problem:payload-too-large"
        # Public routes have the same limit.
        login = await client.post("/auth/v1/login", content=b"{" + b" " * 2000 + b"}")
        assert login.status_code == 413

        # The ingest routes take more; below the limit everything passes.
        ingest = await client.post(
            "/storage/v1/packages/p-1/instances", content=b"z" * 4000, headers=bearer(token)
        )
        assert ingest.status_code == 200
        assert ingest.json()["body_size"] == 4000
        too_big = await client.post(
            "/storage/v1/packages/p-1/instances", content=chunked(6000), headers=bearer(token)
        )
        assert too_big.status_code == 413
        small = await client.post("/codes/v1/codes", content=chunked(900), headers=bearer(token))
        assert small.status_code == 200
    # The declared oversize bodies never reached the codes service; the counted one was cut.
    assert [seen["body_size"] for seen in upstreams.states["codes"].requests] == [900]


async def test_stopped_upstream_is_502(upstreams: Upstreams) -> None:
    state = UpstreamState("codes")
    async with serve(stand_in(state, lambda: {"keys": []})) as url:
        pass  # started, then stopped: nothing listens there any more
    settings = gateway_settings(upstreams, suite=upstreams.suite(codes_url=url))
    token = upstreams.issuer.mint("account-1")
    async with running_gateway(settings) as client:
        response = await client.get("/codes/v1/codes", headers=bearer(token))
    assert response.status_code == 502
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"] == "urn:hds:problem:upstream-unreachable"


async def test_slow_upstream_is_504(upstreams: Upstreams) -> None:
    settings = gateway_settings(upstreams, upstream_read_timeout_seconds=0.3)
    token = upstreams.issuer.mint("account-1")
    async with running_gateway(settings) as client:
        response = await client.get("/storage/v1/slow", headers=bearer(token))
        upstreams.states["storage"].release_slow.set()
    assert response.status_code == 504
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"] == "urn:hds:problem:upstream-timeout"


async def test_upstream_stalling_mid_body_cuts_the_response_short(upstreams: Upstreams) -> None:
    settings = gateway_settings(upstreams, upstream_read_timeout_seconds=0.3)
    token = upstreams.issuer.mint("account-1")
    async with running_gateway(settings) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/storage/v1/stalls", headers=bearer(token))
        upstreams.states["storage"].release_slow.set()


async def test_client_going_away_stops_the_upstream_stream(
    gateway: httpx.AsyncClient, upstreams: Upstreams, account_token: str
) -> None:
    storage = upstreams.states["storage"]
    async with gateway.stream(
        "GET", "/storage/v1/endless", headers=bearer(account_token)
    ) as response:
        received = 0
        async for chunk in response.aiter_raw():
            received += len(chunk)
            if received > 4 * MIB:
                break
    # The client closed the connection; the gateway stops pulling, the upstream notices.
    await asyncio.wait_for(storage.stream_closed.wait(), timeout=10)
