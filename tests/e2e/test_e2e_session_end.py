"""A session that ends stops its tokens at every service within seconds, through the
gateway: after logout, password reset, refresh-token reuse and disablement a captured
access token is refused by storage, by the codes service (import) and by the identity
service itself; after a code is revoked or expired a captured DLX token is refused by
list and download."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from hds_common.testing.dicom import make_pdf, make_study, write_study
from tests.e2e.support import (
    RunningSuite,
    bearer,
    dlx_token,
    institution_headers,
    log_in,
    onboard_admin,
    publish,
    register_patient,
)

pytestmark = pytest.mark.slow

BIRTH_DATE = "19660606"
PASSWORD = "a long and unusual passphrase 7"
# HDS_SESSION_CHECK_SECONDS (5 s by default) plus the time a request takes on a busy
# machine: a token must be refused by then.
WITHIN_SECONDS = 5 + 3


@pytest.fixture(scope="module")
def client(suite: RunningSuite) -> httpx.Client:
    return httpx.Client(base_url=suite.gateway_url, timeout=60)


def _publish(suite: RunningSuite, folder: Path) -> dict[str, Any]:
    write_study(folder, make_study(2, series=1, patient_name="Ende^Eva", seed=31))
    (folder / "befund.pdf").write_bytes(make_pdf("Befund Ende"))
    return publish(suite, folder, BIRTH_DATE)


@pytest.fixture(scope="module")
def published(suite: RunningSuite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _publish(suite, tmp_path_factory.mktemp("session-end"))


def refused_within(request: Callable[[], httpx.Response], seconds: float) -> httpx.Response:
    """Send ``request`` until it is answered 401; fail if that takes longer than ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        response = request()
        if response.status_code == 401:
            return response
        assert time.monotonic() < deadline, (response.status_code, response.text)
        time.sleep(0.25)


def account_calls(
    client: httpx.Client, code: str, access_token: str
) -> dict[str, Callable[[], httpx.Response]]:
    headers = bearer(access_token)
    return {
        "storage": lambda: client.get("/storage/v1/studies", headers=headers),
        "auth": lambda: client.get("/auth/v1/me", headers=headers),
        "codes import": lambda: client.post(
            "/codes/v1/import", json={"code": code, "birth_date": BIRTH_DATE}, headers=headers
        ),
    }


def assert_token_works(client: httpx.Client, code: str, access_token: str) -> None:
    for name, call in account_calls(client, code, access_token).items():
        response = call()
        assert response.status_code == 200, (name, response.text)


def assert_token_stops(client: httpx.Client, code: str, access_token: str) -> None:
    for name, call in account_calls(client, code, access_token).items():
        response = refused_within(call, WITHIN_SECONDS)
        assert response.json()["type"] in (
            "urn:hds:problem:invalid-token",
            "urn:hds:problem:session-ended",
        ), (name, response.text)


def test_logout_stops_the_access_token_everywhere(
    suite: RunningSuite, client: httpx.Client, published: dict[str, Any]
) -> None:
    patient = register_patient(suite, client, PASSWORD)
    tokens = log_in(client, patient["email"], PASSWORD)
    assert_token_works(client, published["code"], tokens["access_token"])
    logout = client.post("/auth/v1/logout", json={"refresh_token": tokens["refresh_token"]})
    assert logout.status_code == 204
    assert_token_stops(client, published["code"], tokens["access_token"])


def test_password_reset_stops_the_access_token_everywhere(
    suite: RunningSuite, client: httpx.Client, published: dict[str, Any]
) -> None:
    patient = register_patient(suite, client, PASSWORD)
    tokens = log_in(client, patient["email"], PASSWORD)
    assert_token_works(client, published["code"], tokens["access_token"])
    reset = client.post(
        "/auth/v1/password/reset",
        json={
            "email": patient["email"],
            "recovery_code": patient["recovery_code"],
            "new_password": "another long passphrase 8",
        },
    )
    assert reset.status_code == 200, reset.text
    assert_token_stops(client, published["code"], tokens["access_token"])
    # The account itself goes on: a new login reads the imported package again.
    again = log_in(client, patient["email"], "another long passphrase 8")
    assert len(client.get("/storage/v1/studies", headers=bearer(again["access_token"])).json()) == 1


def test_refresh_token_reuse_stops_every_access_token_of_the_family(
    suite: RunningSuite, client: httpx.Client, published: dict[str, Any]
) -> None:
    patient = register_patient(suite, client, PASSWORD)
    first = log_in(client, patient["email"], PASSWORD)
    second = client.post("/auth/v1/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    assert_token_works(client, published["code"], second.json()["access_token"])
    # A copy of the first refresh token turns up: the family is revoked.
    reuse = client.post("/auth/v1/refresh", json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    for tokens in (first, second.json()):
        assert_token_stops(client, published["code"], tokens["access_token"])


def test_disablement_stops_the_access_token_everywhere(
    suite: RunningSuite, client: httpx.Client, published: dict[str, Any]
) -> None:
    patient = register_patient(suite, client, PASSWORD)
    tokens = log_in(client, patient["email"], PASSWORD)
    assert_token_works(client, published["code"], tokens["access_token"])
    onboarded = onboard_admin(suite)
    admin = bearer(log_in(client, onboarded["email"], onboarded["password"])["access_token"])
    disabled = client.patch(
        f"/auth/v1/admin/accounts/{patient['id']}", json={"disabled": True}, headers=admin
    )
    assert disabled.status_code == 200, disabled.text
    # Among others: a disabled account imports nothing any more.
    assert_token_stops(client, published["code"], tokens["access_token"])


def _dlx_calls(client: httpx.Client, token: str) -> dict[str, Callable[[], httpx.Response]]:
    headers = bearer(token)
    listing = client.get("/dlx/v1/list", headers=headers)
    assert listing.status_code == 200, listing.text
    items = [item["id"] for item in listing.json()["dataItem"]]
    assert items
    return {
        "list": lambda: client.get("/dlx/v1/list", headers=headers),
        "download": lambda: client.get(f"/dlx/v1/download/{items[0]}", headers=headers),
        "downloadall": lambda: client.get("/dlx/v1/downloadall", headers=headers),
    }


@pytest.mark.parametrize("event", ["revoke", "expire"])
def test_a_code_that_ends_stops_its_dlx_tokens(
    suite: RunningSuite, client: httpx.Client, tmp_path: Path, event: str
) -> None:
    answer = _publish(suite, tmp_path / "study")
    token = dlx_token(client, answer["code"], BIRTH_DATE)
    calls = _dlx_calls(client, token)
    for name, call in calls.items():
        assert call().status_code in (200, 206), name
    ended = client.post(
        f"/codes/v1/codes/{answer['code_id']}/{event}", headers=institution_headers(suite, client)
    )
    assert ended.status_code == 200, ended.text
    for name, call in calls.items():
        response = refused_within(call, WITHIN_SECONDS)
        assert response.headers["content-type"] == "application/problem+json", name
