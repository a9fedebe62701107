"""Unknown address vs wrong password (same status, body, timing) and throttling of logins
per account and per client address, shared by replicas through the database."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.auth.support import Accounts, AppFactory, AuthApp, without_request_id


async def test_unknown_address_and_wrong_password_get_identical_answers(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.active()
    wrong = await auth.client.post(
        "/auth/v1/login", json={"email": account.email, "password": "not the password at all"}
    )
    unknown = await auth.client.post(
        "/auth/v1/login",
        json={"email": accounts.new_email("nobody"), "password": "not the password at all"},
    )
    odd = await auth.client.post(
        "/auth/v1/login", json={"email": "not even an address", "password": "whatever it is"}
    )
    assert wrong.status_code == unknown.status_code == odd.status_code == 401
    assert without_request_id(wrong.json()) == without_request_id(unknown.json())
    assert without_request_id(wrong.json()) == without_request_id(odd.json())
    assert wrong.json()["type"] == "urn:hds:problem:invalid-credentials"
    for header in ("content-type", "www-authenticate", "content-length"):
        assert wrong.headers[header] == unknown.headers[header] == odd.headers[header]


async def test_unknown_address_takes_as_long_as_a_wrong_password(
    make_auth_app: AppFactory, accounts: Accounts
) -> None:
    # Moderate Argon2 cost so a hash dominates the request; generous throttling so the
    # measurement is not cut short.
    async with make_auth_app(
        argon2_memory_kib=16384,
        argon2_time_cost=2,
        login_failures_per_account=100,
        login_failures_per_client=100,
    ) as harness:
        # Registered through this app, so its hash has this app's Argon2 cost.
        address = accounts.new_email("timed")
        registered = await harness.client.post(
            "/auth/v1/register", json={"email": address, "password": "a long unusual passphrase"}
        )
        assert registered.status_code == 201
        unknown_address = accounts.new_email("nobody")

        async def timed(address: str) -> float:
            started = time.perf_counter()
            response = await harness.client.post(
                "/auth/v1/login", json={"email": address, "password": "wrong password here"}
            )
            elapsed = time.perf_counter() - started
            assert response.status_code == 401
            return elapsed

        await timed(address)  # warm-up
        wrong, unknown = [], []
        for _ in range(7):
            wrong.append(await timed(address))
            unknown.append(await timed(unknown_address))
        ratio = statistics.median(unknown) / statistics.median(wrong)
        # Without the dummy hash the unknown address answers many times faster.
        assert 0.6 < ratio < 1.67, (wrong, unknown)


@pytest.mark.both_databases
async def test_failed_logins_are_throttled_per_account(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    limit = auth.runtime.settings.login_failures_per_account
    for _ in range(limit):
        response = await auth.client.post(
            "/auth/v1/login", json={"email": account.email, "password": "wrong password!"}
        )
        assert response.status_code == 401
    blocked = await auth.client.post(
        "/auth/v1/login", json={"email": account.email, "password": account.password}
    )
    assert blocked.status_code == 429
    assert blocked.headers["content-type"] == "application/problem+json"
    assert blocked.json()["type"] == "urn:hds:problem:too-many-attempts"
    retry_after = int(blocked.headers["retry-after"])
    assert 1 <= retry_after <= auth.runtime.settings.throttle_window_seconds
    # Another account from the same client is not affected.
    other = await accounts.active()
    assert (await accounts.login(other))["access_token"]


async def test_unknown_addresses_are_throttled_like_known_ones(
    auth: AuthApp, accounts: Accounts
) -> None:
    address = accounts.new_email("nobody")
    for _ in range(auth.runtime.settings.login_failures_per_account):
        response = await auth.client.post(
            "/auth/v1/login", json={"email": address, "password": "wrong password!"}
        )
        assert response.status_code == 401
    blocked = await auth.client.post(
        "/auth/v1/login", json={"email": address, "password": "wrong password!"}
    )
    assert blocked.status_code == 429


async def test_successful_login_resets_the_account_counter(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.active()
    limit = auth.runtime.settings.login_failures_per_account
    for _ in range(limit - 1):
        await auth.client.post(
            "/auth/v1/login", json={"email": account.email, "password": "wrong password!"}
        )
    await accounts.login(account)
    for _ in range(limit - 1):
        response = await auth.client.post(
            "/auth/v1/login", json={"email": account.email, "password": "wrong password!"}
        )
        assert response.status_code == 401


async def test_failed_logins_are_throttled_per_client_across_replicas(
    make_auth_app: AppFactory, accounts: Accounts
) -> None:
    settings = {"login_failures_per_client": 4, "login_failures_per_account": 100}
    async with make_auth_app(**settings) as replica_a, make_auth_app(**settings) as replica_b:
        attacker_a = replica_a.client_from("203.0.113.7")
        attacker_b = replica_b.client_from("203.0.113.7")
        bystander = replica_b.client_from("198.51.100.20")
        victim = await accounts.active()
        async with attacker_a, attacker_b, bystander:
            # Failures spread over two replicas and many addresses add up per client.
            for index in range(4):
                client = attacker_a if index % 2 else attacker_b
                response = await client.post(
                    "/auth/v1/login",
                    json={"email": accounts.new_email("spray"), "password": "wrong password!"},
                )
                assert response.status_code == 401
            for client in (attacker_a, attacker_b):
                blocked = await client.post(
                    "/auth/v1/login", json={"email": victim.email, "password": victim.password}
                )
                assert blocked.status_code == 429
                assert int(blocked.headers["retry-after"]) >= 1
            allowed = await bystander.post(
                "/auth/v1/login", json={"email": victim.email, "password": victim.password}
            )
            assert allowed.status_code == 200


async def test_throttle_window_ends(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    for _ in range(auth.runtime.settings.login_failures_per_account):
        await auth.client.post(
            "/auth/v1/login", json={"email": account.email, "password": "wrong password!"}
        )
    assert (
        await auth.client.post(
            "/auth/v1/login", json={"email": account.email, "password": account.password}
        )
    ).status_code == 429
    # Move the window into the past instead of waiting for it.
    import datetime as dt

    from sqlalchemy import update

    from hds_auth.models import ThrottleCounter

    async with auth.runtime.session_maker() as session, session.begin():
        await session.execute(
            update(ThrottleCounter).values(
                window_started_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
            )
        )
    assert (await accounts.login(account))["access_token"]
