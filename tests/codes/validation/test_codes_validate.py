"""Internal validation: grants, wrong/unknown/expired/locked answers, lockout (PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hds_codes.config import Settings
from hds_codes.models import AccessCode, ClientThrottle
from hds_codes.validation import repository
from hds_codes.validation.lockout import client_delay
from hds_codes.values import format_code, generate_code
from hds_common.crypto import open_grant
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token
from tests.codes.support import (
    INTERNAL_SECRET,
    Harness,
    Neighbourhood,
    assert_problem,
    codes_harness,
    unique_client,
)

pytestmark = pytest.mark.postgres


def _comparable(response: httpx.Response) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = response.json()
    body.pop("request_id")
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id",)}
    return response.status_code, body, headers


async def test_right_answers_give_a_package_grant_for_storage(codes: Harness) -> None:
    issued = await codes.issue(birth_date="19841007")
    response = await codes.validate(issued.code, "19841007")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code_id"] == issued.id
    assert body["package_id"] == issued.package.id
    assert body["code_expires_at"] == issued.body["expires_at"]
    # The grant names a key session at storage that holds the package key; the grant
    # itself holds none.
    grant = open_grant(codes.hood.storage_private_key, body["grant"])
    assert (grant.kind, grant.subject, grant.session_id) == (
        "package",
        issued.package.id,
        body["key_session_id"],
    )
    session = codes.hood.key_sessions[grant.session_id]
    assert (session.key, session.tag) == (issued.package.key, issued.id)
    assert session.expires_at == grant.expires_at
    expected_expiry = codes.clock.now + dt.timedelta(seconds=codes.settings.grant_ttl_seconds)
    assert abs(grant.expires_at - expected_expiry.timestamp()) <= 1
    assert dt.datetime.fromisoformat(body["expires_at"]).timestamp() == grant.expires_at


async def test_codes_are_accepted_in_any_case_with_aliases_and_without_separators(
    codes: Harness,
) -> None:
    issued = await codes.issue()
    compact = issued.code.replace("-", "")
    aliased = compact.replace("1", "l").replace("0", "O")
    for typed in (compact.lower(), f" {issued.code.lower()} ", aliased, aliased.replace("l", "I")):
        response = await codes.validate(typed, issued.birth_date)
        assert response.status_code == 200, typed


async def test_unknown_code_and_wrong_birth_date_are_indistinguishable(codes: Harness) -> None:
    issued = await codes.issue()
    wrong = await codes.validate(issued.code, "19700201")
    unknown = await codes.validate(format_code(generate_code()), issued.birth_date)
    malformed = await codes.validate("not-a-code", issued.birth_date)
    not_ascii = await codes.validate("ÄÖÜ-\u0663\u0664-\U0001f600", issued.birth_date)
    assert_problem(wrong, 401, "invalid-code")
    assert (
        _comparable(wrong)
        == _comparable(unknown)
        == _comparable(malformed)
        == _comparable(not_ascii)
    )
    assert wrong.headers["www-authenticate"].startswith("HDS-Access-Code")


async def test_expired_code_with_right_answers_is_403_and_with_wrong_answers_401(
    codes: Harness,
) -> None:
    issued = await codes.issue(validity_days=30)
    codes.clock.advance(days=30)
    expired = await codes.validate(issued.code, issued.birth_date)
    body = assert_problem(expired, 403, "code-expired")
    assert "grant" not in body
    assert_problem(await codes.validate(issued.code, "19700202"), 401, "invalid-code")


async def test_five_failures_lock_the_code_for_15_minutes_then_doubling(codes: Harness) -> None:
    issued = await codes.issue()
    headers = codes.auth(issued.institution)
    for _ in range(5):
        assert_problem(await codes.validate(issued.code, "19800101"), 401, "invalid-code")
    # Locked: even the right answers fail, exactly like a wrong answer.
    locked = await codes.validate(issued.code, issued.birth_date)
    wrong = await codes.validate(format_code(generate_code()), issued.birth_date)
    assert _comparable(locked) == _comparable(wrong)
    state = (await codes.client.get(f"/codes/v1/codes/{issued.id}", headers=headers)).json()
    assert state["state"] == "locked"
    first_lock = dt.datetime.fromisoformat(state["locked_until"])
    assert first_lock == codes.clock.now + dt.timedelta(minutes=15)

    codes.clock.advance(minutes=15)
    for _ in range(5):
        assert_problem(await codes.validate(issued.code, "19800101"), 401, "invalid-code")
    state = (await codes.client.get(f"/codes/v1/codes/{issued.id}", headers=headers)).json()
    assert dt.datetime.fromisoformat(state["locked_until"]) == codes.clock.now + dt.timedelta(
        minutes=30
    )
    codes.clock.advance(minutes=29)
    assert_problem(await codes.validate(issued.code, issued.birth_date), 401, "invalid-code")
    codes.clock.advance(minutes=1)
    assert (await codes.validate(issued.code, issued.birth_date)).status_code == 200

    # A right answer resets the doubling: the next lock is 15 minutes again.
    for _ in range(5):
        await codes.validate(issued.code, "19800101")
    state = (await codes.client.get(f"/codes/v1/codes/{issued.id}", headers=headers)).json()
    assert dt.datetime.fromisoformat(state["locked_until"]) == codes.clock.now + dt.timedelta(
        minutes=15
    )


async def test_a_right_answer_resets_the_failure_count(codes: Harness) -> None:
    issued = await codes.issue()
    for _ in range(2):
        for _ in range(4):
            assert (await codes.validate(issued.code, "19800101")).status_code == 401
        assert (await codes.validate(issued.code, issued.birth_date)).status_code == 200


async def test_a_client_over_its_allowance_is_slowed_down_not_refused(codes: Harness) -> None:
    client = unique_client()
    issued = await codes.issue()
    # 19 failures on 19 codes, then right answers (which do not count), then the 20th.
    for _ in range(19):
        wrong = await codes.validate(format_code(generate_code()), "19700101", client=client)
        assert wrong.status_code == 401
    for _ in range(3):
        assert (
            await codes.validate(issued.code, issued.birth_date, client=client)
        ).status_code == 200
    assert (
        await codes.validate(format_code(generate_code()), "19700101", client=client)
    ).status_code == 401
    assert codes.delayed() == 0
    # Beyond the allowance every attempt waits, longer after every failure, and is then
    # answered as usual: right answers succeed, wrong ones fail.
    waits = []
    for code, birth_date, status in [
        (issued.code, issued.birth_date, 200),
        (format_code(generate_code()), "19700101", 401),
        (format_code(generate_code()), "19700101", 401),
        (issued.code, issued.birth_date, 200),
    ]:
        started = time.perf_counter()
        response = await codes.validate(code, birth_date, client=client)
        waits.append(time.perf_counter() - started)
        assert response.status_code == status, response.text
    assert codes.delayed() == 4
    base = codes.settings.client_delay_seconds
    # 21 attempts in flight count: 1 x base; then 22 and 23 failures: 2 x and 4 x base
    # (refunded right answers do not add).
    assert waits[0] >= base
    assert waits[1] >= base
    assert waits[2] >= 2 * base
    assert waits[3] >= 4 * base
    # Other clients are not affected, and the window ends after 15 minutes.
    assert (await codes.validate(issued.code, issued.birth_date)).status_code == 200
    codes.clock.advance(minutes=15)
    assert (await codes.validate(issued.code, issued.birth_date, client=client)).status_code == 200
    assert codes.delayed() == 4


def test_the_client_delay_doubles_up_to_its_cap() -> None:
    settings = Settings(
        client_max_failures=20, client_delay_seconds=0.5, client_delay_max_seconds=10
    )
    delays = [client_delay(settings, failures) for failures in range(18, 28)]
    assert delays == [0, 0, 0, 0.5, 1, 2, 4, 8, 10, 10]


async def test_lock_and_client_counters_survive_a_restart(
    postgres_url: str, tmp_path: Path, hood: Neighbourhood
) -> None:
    secret_file = tmp_path / "lookup.key"
    client = unique_client()
    async with codes_harness(postgres_url, secret_file, hood) as before:
        issued = await before.issue()
        for _ in range(5):
            await before.validate(issued.code, "19800101", client=client)
        for _ in range(15):
            await before.validate(format_code(generate_code()), "19800101", client=client)
        locked_at = before.clock.now
    async with codes_harness(postgres_url, secret_file, hood) as after:
        after.clock.now = locked_at + dt.timedelta(minutes=14)
        assert_problem(await after.validate(issued.code, issued.birth_date), 401, "invalid-code")
        assert after.metric("locked") == 1
        # The client's 20 failures were remembered as well: its next attempt is slowed.
        response = await after.validate(issued.code, issued.birth_date, client=client)
        assert_problem(response, 401, "invalid-code")
        assert after.delayed() == 1
        after.clock.now = locked_at + dt.timedelta(minutes=15)
        assert (await after.validate(issued.code, issued.birth_date)).status_code == 200


async def test_codes_keep_their_argon2_parameters_when_the_setting_changes(
    postgres_url: str, tmp_path: Path, hood: Neighbourhood
) -> None:
    secret_file = tmp_path / "lookup.key"
    async with codes_harness(postgres_url, secret_file, hood) as before:
        issued = await before.issue()
    async with codes_harness(
        postgres_url, secret_file, hood, argon2_memory_kib=2048, argon2_time_cost=2
    ) as after:
        # The old slot still opens (its own parameters are stored with it) ...
        assert await slot_cost(after, issued.id) == (1, 1024, 1)
        old_salt = await slot_salt(after, issued.id)
        assert (await after.validate(issued.code, issued.birth_date)).status_code == 200
        # ... and the right answer re-made it under the current cost and a fresh salt.
        assert await slot_cost(after, issued.id) == (2, 2048, 1)
        assert await slot_salt(after, issued.id) != old_salt
        response = await after.validate(issued.code, issued.birth_date)
        assert response.status_code == 200
        assert hood.session_key(response.json()["grant"]) == issued.package.key
        assert_problem(await after.validate(issued.code, "19800101"), 401, "invalid-code")
        newer = await after.issue()
        assert await slot_cost(after, newer.id) == (2, 2048, 1)
        assert (await after.validate(newer.code, newer.birth_date)).status_code == 200


async def slot_cost(codes: Harness, code_id: str) -> tuple[int, int, int]:
    async with codes.runtime.session_maker() as session:
        row = await session.get(AccessCode, code_id)
        assert row is not None
        return row.kdf_time_cost, row.kdf_memory_kib, row.kdf_parallelism


async def slot_salt(codes: Harness, code_id: str) -> bytes:
    async with codes.runtime.session_maker() as session:
        row = await session.get(AccessCode, code_id)
        assert row is not None
        return row.kdf_salt


async def test_validation_is_for_services_only(codes: Harness) -> None:
    issued = await codes.issue()
    body = {"code": issued.code, "birth_date": issued.birth_date, "client": "10.0.0.1"}
    response = await codes.client.post("/internal/v1/validate", json=body)
    assert_problem(response, 401, "service-token-invalid")
    response = await codes.client.post(
        "/internal/v1/validate",
        json=body,
        headers={SERVICE_TOKEN_HEADER: mint_service_token("another-secret", "dlx")},
    )
    assert_problem(response, 401, "service-token-invalid")
    response = await codes.client.post(
        "/internal/v1/validate",
        json={**body, "birth_date": "19700132"},
        headers={SERVICE_TOKEN_HEADER: mint_service_token(INTERNAL_SECRET, "dlx")},
    )
    assert_problem(response, 422, "invalid-birth-date")


async def test_brute_force_of_1000_birth_dates_never_succeeds_and_locks(codes: Harness) -> None:
    """1,000 distinct wrong birth dates, 50 at a time from changing addresses (so the
    per-client limit does not hide the per-code lock): no success, a lock, and only
    five answers ever evaluated although many arrived at the same moment."""
    issued = await codes.issue(birth_date="19750615")
    start = dt.date(1940, 1, 1)
    wrong_dates = [
        f"{start + dt.timedelta(days=i):%Y%m%d}"
        for i in range(1001)
        if start + dt.timedelta(days=i) != dt.date(1975, 6, 15)
    ][:1000]
    assert len(set(wrong_dates)) == 1000
    statuses: list[int] = []
    for batch in range(0, 1000, 50):
        responses = await asyncio.gather(
            *(codes.validate(issued.code, date) for date in wrong_dates[batch : batch + 50])
        )
        statuses += [response.status_code for response in responses]
    assert statuses == [401] * 1000
    assert codes.metric("success") == 0
    assert codes.metric("rejected") == 5  # evaluated and wrong
    assert codes.metric("locked") == 995  # refused unevaluated
    state = (
        await codes.client.get(
            f"/codes/v1/codes/{issued.id}", headers=codes.auth(issued.institution)
        )
    ).json()
    assert state["state"] == "locked"
    assert_problem(await codes.validate(issued.code, "19750615"), 401, "invalid-code")


async def test_old_client_windows_are_pruned(codes: Harness) -> None:
    now = codes.clock.now
    window = dt.timedelta(seconds=codes.settings.client_window_seconds)
    async with codes.runtime.session_maker.begin() as session:
        for name, started in (("old", now - 2 * window), ("current", now)):
            count = await repository.count_client_attempt(
                session, f"prune-test-{name}-{codes.clock.now.timestamp()}", now=started,
                window_start=started - window,
            )  # fmt: skip
            assert count == 1
    async with codes.runtime.session_maker.begin() as session:
        await repository.prune_client_throttles(session, window_start=now - window)
    async with codes.runtime.session_maker() as session:
        left = await session.scalars(
            select(ClientThrottle.client_hash).where(
                ClientThrottle.client_hash.like(f"prune-test-%-{codes.clock.now.timestamp()}")
            )
        )
        assert [name.split("-")[2] for name in left] == ["current"]
