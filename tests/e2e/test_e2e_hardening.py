"""Hardening of the suite as an attacker or a careless client meets it, through the
gateway (or, for in-cluster callers, at a service port): chunked uploads and quota, the
internal service token, e-mail addresses in logs, forged Host headers, /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import selectors
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hds_common.testing.dicom import make_dicom, make_study, write_study
from hds_common.testing.ports import free_port
from hds_common.testing.processes import stop_process
from tests.e2e.support import RunningSuite, publish, wait_until_ready
from tests.e2e.test_e2e_shares import register

pytestmark = pytest.mark.slow

PASSWORD = "a long and unusual passphrase 7"
GIB = 1024 * 1024 * 1024


@contextmanager
def extra_gateway(
    suite: RunningSuite, *, open_files: int | None = None, **settings: str
) -> Iterator[str]:
    """One more gateway process in front of the suite's services, with ``settings``
    (and, if given, a hard limit of ``open_files`` descriptors, as many hosts have)."""
    port = free_port()
    env = {**suite.env, "HDS_GATEWAY_PORT": str(port), **settings}
    log = (suite.var / f"gateway-{port}.log").open("ab")

    def limit_open_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    process = subprocess.Popen(
        [sys.executable, "-m", "hds_gateway", "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=limit_open_files,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{url}/healthz", {"gateway": process}, timeout=30)
        yield url
    finally:
        stop_process(process)
        log.close()


def new_institution(suite: RunningSuite, *, quota_bytes: int) -> str:
    """A new institution with a quota (institutions have none by default), invited by
    the operator and onboarded through the gateway; its e-mail address."""
    email = f"institution-{uuid.uuid4().hex[:8]}@example.org"
    invited = suite.command(
        "hds_auth", "invite", "--email", email, "--role", "institution",
        "--quota-bytes", str(quota_bytes),
    )  # fmt: skip
    assert invited.returncode == 0, invited.stderr
    accepted = httpx.post(
        f"{suite.gateway_url}/auth/v1/invitation/accept",
        json={"token": suite.invitation_token(email), "password": PASSWORD},
        timeout=60,
    )
    assert accepted.status_code == 201, accepted.text
    return email


# --- chunked uploads and quota ------------------------------------------------------------


async def _pieces(data: bytes, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


async def test_concurrent_chunked_uploads_into_an_empty_account_all_succeed(
    suite: RunningSuite,
) -> None:
    email = new_institution(suite, quota_bytes=GIB)
    files = [
        make_dicom(
            patient_id="CHUNK-1",
            study_uid="2.25.5" + "0" * 36,
            series_uid="2.25.6" + "0" * 36,
            sop_uid=f"2.25.{10**37 + i}",
            rows=256,
            columns=256,
            seed=i,
        ).data
        for i in range(20)
    ]
    assert all(120_000 < len(data) < 140_000 for data in files)
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=120) as client:
        login = await client.post("/auth/v1/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        package = await client.post("/storage/v1/packages", headers=auth)
        assert package.status_code == 201, package.text
        path = f"/storage/v1/packages/{package.json()['id']}/instances"

        responses = await asyncio.gather(
            *(
                client.post(
                    path,
                    headers={**auth, "Content-Type": "application/dicom"},
                    content=_pieces(data),
                )
                for data in files
            )
        )

        assert all("content-length" not in r.request.headers for r in responses)
        assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
        usage = (await client.get("/storage/v1/usage", headers=auth)).json()
    assert usage["used_bytes"] == sum(len(data) for data in files)
    assert usage["quota_bytes"] == GIB


# --- the internal service token -------------------------------------------------------------

INTERNAL_ROUTES = [
    ("HDS_AUTH_URL", "GET", f"/internal/v1/accounts/{uuid.UUID(int=1)}"),
    ("HDS_AUTH_URL", "POST", "/internal/v1/dlx-tokens"),
    ("HDS_CODES_URL", "POST", "/internal/v1/validate"),
    ("HDS_STORAGE_URL", "GET", f"/internal/v1/packages/{uuid.UUID(int=1)}/key"),
    ("HDS_STORAGE_URL", "GET", f"/internal/v1/packages/{uuid.UUID(int=1)}/status"),
]


@pytest.mark.parametrize(
    "token", ["v1.dlx.9999999999.\u00e9\u00e9", "\u00ff" * 70, "v1.d\u00e9x.1.0"]
)
@pytest.mark.parametrize(("service", "method", "path"), INTERNAL_ROUTES)
def test_a_non_ascii_service_token_is_refused_with_401(
    suite: RunningSuite, service: str, method: str, path: str, token: str
) -> None:
    """/internal is reached only inside the cluster: at each service's own port."""
    response = httpx.request(
        method,
        suite.env[service] + path,
        headers={b"X-HDS-Service-Token": token.encode("latin-1")},
        json={},
        timeout=30,
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:hds:problem:service-token-invalid"


# --- e-mail addresses in logs ---------------------------------------------------------------


def test_no_e_mail_address_reaches_a_log(suite: RunningSuite, tmp_path: Path) -> None:
    """Sharing by e-mail address looks the recipient up at the identity service with the
    address in the query string; neither that nor anything else logs an address."""
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    sharer_email, sharer = register(client, suite, "patient")
    recipient_email, recipient = register(client, suite, "referrer")
    # Shares are off for new accounts; the recipient allows them first.
    allowed = client.patch("/auth/v1/me/settings", json={"accept_shares": True}, headers=recipient)
    assert allowed.status_code == 200, allowed.text
    study = make_study(2, series=1, patient_name="Log^Lena", patient_id="LOG-1", seed=31)
    write_study(tmp_path / "study", study)
    code = publish(suite, tmp_path / "study", "19750612")["code"]
    imported = client.post(
        "/codes/v1/import", json={"code": code, "birth_date": "19750612"}, headers=sharer
    )
    assert imported.status_code == 200, imported.text
    (held,) = client.get("/storage/v1/studies", headers=sharer).json()
    shared = client.post(
        f"/storage/v1/studies/{held['id']}/shares",
        json={"recipient": recipient_email},
        headers=sharer,
    )
    assert shared.status_code == 201, shared.text
    unknown = client.post(
        f"/storage/v1/studies/{held['id']}/shares",
        json={"recipient": f"nobody-{uuid.uuid4().hex[:8]}@example.org"},
        headers=sharer,
    )
    assert unknown.status_code in (404, 422), unknown.text

    logs = {name: suite.log_of(name) for name in ("auth", "codes", "storage", "dlx", "gateway")}
    assert "/internal/v1/accounts" in logs["auth"]  # the lookup happened and was logged
    for name, text in logs.items():
        for address in (sharer_email, recipient_email, unknown.request.content.decode()):
            local_part = re.sub(r".*?([a-z]+-[0-9a-f]{8})@.*", r"\1", address, flags=re.S)
            assert local_part not in text, f"{local_part} in the {name} log"
        assert not re.search(r"[\w.+-]+(@|%40)example\.org", text), name


# --- forged Host headers --------------------------------------------------------------------

FORGED = "evil.example"


def test_a_forged_host_never_appears_in_an_answer(suite: RunningSuite) -> None:
    """apiBasePath and every portal answer come from HDS_PUBLIC_BASE_URL."""
    public = suite.gateway_url
    forged_headers = [
        {"Host": FORGED},
        {"Host": FORGED, "X-Forwarded-Host": FORGED, "X-Forwarded-Proto": "https"},
        {"Host": f"{FORGED}:8443", "X-Forwarded-Prefix": "/phish"},
    ]
    dlx = {"X-DICOM-LINK-EXCHANGE": "1"}
    requests = [
        ("/dlx/v1/api_info", {}),
        ("/dlx/v1/token/ABCD-EFGH-JKLM", {}),
        ("/c/ABCD-EFGH-JKLM", dlx),
        ("/?code=ABCD-EFGH-JKLM", dlx),
        ("/c/ABCD-EFGH-JKLM", {}),
        ("/dlx/v1/api_info/", {}),
        ("/auth/v1/login/", {}),
        ("/no/such/route", {}),
    ]
    with httpx.Client(base_url=public, timeout=30, follow_redirects=False) as client:
        for headers in forged_headers:
            for path, extra in requests:
                response = client.get(path, headers={**headers, **extra})
                answer = response.text + json.dumps(dict(response.headers))
                assert FORGED not in answer, (path, headers, answer)
            info = client.get("/dlx/v1/api_info", headers=headers).json()
            assert info["apiBasePath"] == f"{public}/dlx/v1"
            questions = client.get("/c/ABCD-EFGH-JKLM", headers={**headers, **dlx}).json()
            assert questions["apiInfo"][0]["apiBasePath"] == f"{public}/dlx/v1"


# --- /metrics -----------------------------------------------------------------------------------


def test_the_gateways_metrics_are_for_configured_scrapers_only(suite: RunningSuite) -> None:
    token = uuid.uuid4().hex
    # Through the suite's gateway (neither token nor addresses configured): nobody.
    refused = httpx.get(f"{suite.gateway_url}/metrics", timeout=30)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "hds_http_requests_total" not in refused.text
    # With a token: only who presents it.
    with extra_gateway(suite, HDS_GATEWAY_METRICS_TOKEN=token) as url:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
            answer = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
            assert answer.status_code == 403, headers
            assert "hds_http_requests_total" not in answer.text
        scraped = httpx.get(
            f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert scraped.status_code == 200
        assert "hds_http_requests_total" in scraped.text
        # Forwarding headers from an untrusted peer do not make it an allowed address.
        spoofed = httpx.get(f"{url}/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
        assert spoofed.status_code == 403
    # From an allowed address (loopback here): without a token.
    with extra_gateway(suite, HDS_GATEWAY_METRICS_ALLOW_IPS="127.0.0.0/8") as url:
        assert httpx.get(f"{url}/metrics", timeout=30).status_code == 200
    with extra_gateway(suite, HDS_GATEWAY_METRICS_ALLOW_IPS="10.0.0.0/8") as url:
        assert httpx.get(f"{url}/metrics", timeout=30).status_code == 403
        # /healthz and /readyz stay public.
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200


# --- header timeout, connection and concurrency limits, body limits ------------------------


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _open(port: int, payload: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(payload)
    return connection


def _closed_within(connections: list[socket.socket], seconds: float) -> set[socket.socket]:
    """The connections the server closed (EOF or reset) within ``seconds``."""
    closed: set[socket.socket] = set()
    with selectors.DefaultSelector() as selector:
        for connection in connections:
            connection.setblocking(False)
            selector.register(connection, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        while len(closed) < len(connections) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    data = ready.recv(65536)
                except ConnectionError:
                    data = b""
                if not data:
                    closed.add(ready)
                    selector.unregister(ready)
    return closed


@contextmanager
def _connections(port: int, count: int, payload: bytes) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            opened.append(_open(port, payload))
        yield opened
    finally:
        for connection in opened:
            connection.close()


INCOMPLETE_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Slow: "


def test_connections_that_never_finish_their_headers_are_closed(suite: RunningSuite) -> None:
    """1,100 connections with incomplete headers: /healthz answers meanwhile, and every
    one of them is closed once the header timeout has passed."""
    timeout = 3.0
    with (
        extra_gateway(suite, HDS_HTTP_HEADER_TIMEOUT_SECONDS=str(timeout)) as url,
        _connections(_port(url), 1100, INCOMPLETE_HEADERS) as slow,
    ):
        started = time.monotonic()
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200
        assert time.monotonic() - started < timeout  # answered while they are all open

        closed = _closed_within(slow, timeout + 20)

        assert len(closed) == len(slow)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


def test_slow_connections_beyond_the_open_file_limit_do_not_stop_healthz(
    suite: RunningSuite,
) -> None:
    """1,100 incomplete connections against a process allowed 1,024 open files: accept
    would fail, so the connection limit follows the file limit and sheds the waiting."""
    with (
        extra_gateway(suite, open_files=1024, HDS_HTTP_HEADER_TIMEOUT_SECONDS="60") as url,
        _connections(_port(url), 1100, INCOMPLETE_HEADERS) as slow,
    ):
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200
        shed = _closed_within(slow, 5)
        assert len(shed) >= 1100 - 1024
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


def test_a_keep_alive_connection_must_finish_its_next_headers_too(suite: RunningSuite) -> None:
    with extra_gateway(
        suite, HDS_HTTP_HEADER_TIMEOUT_SECONDS="2", HDS_HTTP_KEEPALIVE_TIMEOUT_SECONDS="60"
    ) as url:
        connection = _open(_port(url), b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        try:
            first = connection.recv(65536)
            assert first.startswith(b"HTTP/1.1 200"), first
            connection.sendall(INCOMPLETE_HEADERS)
            assert _closed_within([connection], 15) == {connection}
        finally:
            connection.close()


def test_idle_keep_alive_connections_are_closed(suite: RunningSuite) -> None:
    with extra_gateway(suite, HDS_HTTP_KEEPALIVE_TIMEOUT_SECONDS="1") as url:
        connection = _open(_port(url), b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        try:
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            assert _closed_within([connection], 10) == {connection}
            assert time.monotonic() - started < 5
        finally:
            connection.close()


def test_beyond_the_connection_limit_waiting_connections_make_room(
    suite: RunningSuite,
) -> None:
    """At the limit, the oldest connections still waiting for headers are dropped, so
    a real request still gets through."""
    with (
        extra_gateway(
            suite, HDS_HTTP_MAX_CONNECTIONS="50", HDS_HTTP_HEADER_TIMEOUT_SECONDS="120"
        ) as url,
        _connections(_port(url), 60, INCOMPLETE_HEADERS) as slow,
    ):
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        closed = _closed_within(slow, 5)
        # The ten beyond the limit, then one for the /healthz connection: the oldest.
        assert len(closed) >= 10
        assert closed <= set(slow[:12])


def _held_requests(port: int, count: int) -> list[socket.socket]:
    """``count`` requests in flight: headers complete, body announced but not sent."""
    return [
        _open(
            port,
            b"POST /auth/v1/login HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )
        for _ in range(count)
    ]


def test_a_request_body_that_stalls_is_closed(suite: RunningSuite) -> None:
    """Slow POST: headers complete, then a body that stops arriving; a body that keeps
    arriving, slowly, is not cut."""
    with extra_gateway(suite, HDS_HTTP_BODY_IDLE_TIMEOUT_SECONDS="2") as url:
        (stalled,) = _held_requests(_port(url), 1)
        trickling = _open(
            _port(url),
            b"POST /auth/v1/login HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nContent-Length: 8\r\n\r\n",
        )
        try:
            for byte in b'{"a": 1}'[:-1]:
                trickling.sendall(bytes([byte]))
                time.sleep(0.5)
            assert _closed_within([stalled], 10) == {stalled}
            trickling.sendall(b"}")
            answer = trickling.recv(65536)
            assert answer.startswith(b"HTTP/1.1 422"), answer
        finally:
            stalled.close()
            trickling.close()


def test_requests_beyond_the_concurrency_limit_get_503(suite: RunningSuite) -> None:
    with extra_gateway(suite, HDS_HTTP_MAX_CONCURRENT_REQUESTS="4") as url:
        held = _held_requests(_port(url), 4)
        try:
            time.sleep(1.0)  # the four reach the proxy and wait for their bodies
            busy = httpx.get(f"{url}/dlx/v1/api_info", timeout=10)
            assert busy.status_code == 503, busy.text
            assert busy.headers["content-type"] == "application/problem+json"
            assert busy.headers["retry-after"] == "1"
            assert busy.json()["type"] == "urn:hds:problem:too-many-requests-in-flight"
            assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        finally:
            for connection in held:
                connection.close()
        deadline = time.monotonic() + 10
        while (status := httpx.get(f"{url}/dlx/v1/api_info").status_code) == 503:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert status == 200


def test_a_connection_beyond_the_limit_of_busy_ones_gets_503(suite: RunningSuite) -> None:
    with extra_gateway(suite, HDS_HTTP_MAX_CONNECTIONS="3") as url:
        held = _held_requests(_port(url), 3)
        try:
            time.sleep(1.0)
            refused = httpx.get(f"{url}/healthz", timeout=10)
            assert refused.status_code == 503
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"] == "urn:hds:problem:too-many-connections"
        finally:
            for connection in held:
                connection.close()


JSON_ROUTES = [
    ("HDS_AUTH_URL", "/auth/v1/login"),
    ("HDS_CODES_URL", "/codes/v1/import"),
    ("HDS_DLX_URL", "/dlx/v1/tokentfa/ABCD-EFGH-JKLM"),
    ("HDS_STORAGE_URL", f"/storage/v1/studies/{uuid.UUID(int=1)}/shares"),
]


@pytest.mark.parametrize(("service", "path"), JSON_ROUTES)
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_services_refuse_bodies_beyond_the_limit(
    suite: RunningSuite, service: str, path: str, chunked: bool
) -> None:
    """In-cluster callers reach the services' ports without the gateway's limits."""
    body = b'{"email": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    content = iter([body[i : i + 65536] for i in range(0, len(body), 65536)]) if chunked else body
    response = httpx.post(
        f"{suite.env[service]}{path}",
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:hds:problem:body-too-large"
