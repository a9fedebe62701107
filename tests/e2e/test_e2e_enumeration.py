"""Through the gateway, as a client would ask: nothing tells which e-mail addresses have
accounts. A taken address registers like a new one (status, body, timing) and its holder
gets a mail instead; logging in with the password just chosen and looking up public keys
answer alike for every address."""

from __future__ import annotations

import re
import statistics
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.support import RunningSuite

pytestmark = pytest.mark.slow

RECOVERY_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$")


def _new_address() -> str:
    return f"enum-{uuid.uuid4().hex[:10]}@example.org"


def _shape(body: dict[str, Any]) -> dict[str, Any]:
    uuid.UUID(body["id"])
    assert RECOVERY_CODE.match(body["recovery_code"])
    return {**body, "id": "<uuid>", "email": "<address>", "recovery_code": "<code>"}


def _problem(response: httpx.Response) -> tuple[int, dict[str, Any]]:
    body = response.json()
    body.pop("request_id", None)
    return response.status_code, body


def _register(client: httpx.Client, address: str, password: str) -> httpx.Response:
    return client.post(
        "/auth/v1/register", json={"email": address, "password": password, "role": "referrer"}
    )


def test_registration_and_login_answer_alike_for_taken_and_new_addresses(
    suite: RunningSuite,
) -> None:
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    taken = suite.institution["email"]
    fresh = _new_address()
    password = "an enumerator's passphrase"
    before = len(suite.smtp.messages_to(taken))

    answers = {address: _register(client, address, password) for address in (fresh, taken)}
    assert {a.status_code for a in answers.values()} == {201}
    assert _shape(answers[fresh].json()) == _shape(answers[taken].json())
    assert set(answers[fresh].headers) - {"x-request-id", "date"} == set(answers[taken].headers) - {
        "x-request-id",
        "date",
    }
    [notice] = suite.smtp.messages_to(taken)[before:]
    assert notice["Subject"] == "Someone tried to register with your address"
    assert suite.smtp.messages_to(fresh)[-1]["Subject"] == "Activate your HDS account"

    # The registrant knows the password it chose: a login tells nothing either.
    logins = [
        _problem(client.post("/auth/v1/login", json={"email": a, "password": password}))
        for a in (fresh, taken)
    ]
    assert logins[0] == logins[1]
    assert logins[0][0] == 401
    # The institution's own password still works: nothing of its account changed.
    own = client.post(
        "/auth/v1/login",
        json={"email": taken, "password": suite.institution["password"]},
    )
    assert own.status_code == 200

    # Timing: interleaved, the medians stay close (the Argon2id work dominates).
    new_times: list[float] = []
    taken_times: list[float] = []
    for _ in range(6):
        for address, times in ((_new_address(), new_times), (taken, taken_times)):
            started = time.perf_counter()
            assert _register(client, address, password).status_code == 201
            times.append(time.perf_counter() - started)
    ratio = statistics.median(taken_times) / statistics.median(new_times)
    assert 0.5 < ratio < 2.0, (new_times, taken_times)


def test_public_key_look_up_tells_no_registered_address(suite: RunningSuite) -> None:
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    login = client.post(
        "/auth/v1/login",
        json={"email": suite.institution["email"], "password": suite.institution["password"]},
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    registered = suite.institution["email"]
    answers = []
    for address in (registered, registered.upper(), _new_address()):
        response = client.get("/auth/v1/public-keys", params={"email": address}, headers=headers)
        assert "institution" not in response.text
        answers.append(_problem(response))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0] == 404
    # Without a token the gateway answers 401 for every address alike.
    anonymous = [
        client.get("/auth/v1/public-keys", params={"email": a}).status_code
        for a in (registered, _new_address())
    ]
    assert anonymous == [401, 401]
