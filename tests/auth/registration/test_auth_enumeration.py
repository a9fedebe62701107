"""Nobody learns which e-mail addresses have accounts: registering a taken address answers
exactly like a new one (status, body, timing) and mails the address's holder instead; a
registration's id and a login with the password just chosen tell nothing either.

(The public-key look-up by address is gone: tests/auth/test_auth_account.py.)"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from hds_auth.models import Account
from hds_common.testing.smtp import SmtpTestServer
from tests.auth.support import (
    RECOVERY_CODE,
    Accounts,
    AppFactory,
    AuthApp,
    bearer,
    without_request_id,
)

Json = dict[str, Any]


def _shape(body: Json) -> Json:
    """The answer with what differs between any two registrations (id, address, code)
    replaced by what it must look like."""
    assert set(body) == {
        "id",
        "email",
        "role",
        "name",
        "activated",
        "activation_mail_sent",
        "recovery_code",
    }
    uuid.UUID(body["id"])
    assert RECOVERY_CODE.match(body["recovery_code"]), body["recovery_code"]
    return {**body, "id": "<uuid>", "email": "<address>", "recovery_code": "<code>"}


async def _accounts_in_db(auth: AuthApp) -> list[tuple[str, str, bytes]]:
    async with auth.runtime.session_maker() as session:
        rows = await session.execute(
            select(Account.email, Account.password_hash, Account.password_wrapped_key)
        )
        return sorted((row[0], row[1], row[2]) for row in rows)


async def _register(client: httpx.AsyncClient, address: str, password: str) -> httpx.Response:
    return await client.post(
        "/auth/v1/register", json={"email": address, "password": password, "role": "referrer"}
    )


async def test_a_taken_address_is_answered_like_a_new_one_and_its_holder_is_told(
    auth: AuthApp, accounts: Accounts, smtp_server: SmtpTestServer
) -> None:
    active = await accounts.active(role="patient")
    pending = await accounts.register()  # registered, never activated
    institution = await accounts.privileged(role="institution")
    invited = accounts.new_email("invited")
    await accounts.invite(email=invited, role="institution")
    taken = [active.email, active.email.upper(), pending.email, institution.email, invited]
    before = await _accounts_in_db(auth)
    mails_before = {address.lower(): len(smtp_server.messages_to(address)) for address in taken}

    fresh = accounts.new_email("fresh")
    new_answer = await _register(auth.client, fresh, "an attacker's passphrase")
    assert new_answer.status_code == 201, new_answer.text
    [activation] = smtp_server.messages_to(fresh)
    assert activation["Subject"] == "Activate your HDS account"
    expected = _shape(new_answer.json())
    new_headers = {k: v for k, v in new_answer.headers.items() if k not in ("x-request-id",)}

    for address in taken:
        response = await _register(auth.client, address, "an attacker's passphrase")
        assert response.status_code == 201, response.text
        assert _shape(response.json()) == expected
        assert response.json()["email"] == address.lower()
        assert {
            k: v for k, v in response.headers.items() if k not in ("x-request-id",)
        }.keys() == new_headers.keys()
        assert response.headers["cache-control"] == new_answer.headers["cache-control"]

    # Nothing changed for the holders; each got one mail saying someone tried.
    after = await _accounts_in_db(auth)
    assert [row for row in after if row[0] != fresh] == before
    for address in {a.lower() for a in taken}:
        mails = smtp_server.messages_to(address)[mails_before[address] :]
        expected_mails = 2 if address == active.email.lower() else 1
        assert [m["Subject"] for m in mails] == [
            "Someone tried to register with your address"
        ] * expected_mails, address
        text = str(mails[-1].get_content())
        assert "activate?token=" not in text
        assert "invitation?token=" not in text
    # The invitation still works, with the invitee's own password.
    await accounts.accept_invitation(invited)


async def test_the_answer_of_a_taken_address_leads_nowhere(
    auth: AuthApp, accounts: Accounts
) -> None:
    """Whoever registers chose the password and got an id: neither a login with that
    password nor a look-up of the id tells a new address from a taken one."""
    caller = await accounts.active(role="referrer")
    headers = bearer(await accounts.login(caller))
    holder = await accounts.active(role="patient")
    password = "the registrant's own passphrase"
    answers = []
    for address in (accounts.new_email("fresh"), holder.email):
        registered = await _register(auth.client, address, password)
        assert registered.status_code == 201
        login = await auth.client.post(
            "/auth/v1/login", json={"email": address, "password": password}
        )
        key = await auth.client.get(
            f"/auth/v1/public-keys/{registered.json()['id']}", headers=headers
        )
        answers.append(
            (
                login.status_code,
                without_request_id(login.json()),
                key.status_code,
                without_request_id(key.json()),
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][0] == 401
    assert answers[0][2] == 404


async def test_the_notice_is_bounded_per_address_and_the_answer_stays_alike(
    auth: AuthApp, accounts: Accounts, smtp_server: SmtpTestServer
) -> None:
    holder = await accounts.active()
    limit = auth.runtime.settings.activation_resends_per_account
    before = len(smtp_server.messages_to(holder.email))
    for _ in range(limit + 2):
        response = await _register(auth.client, holder.email, "correct horse battery")
        assert response.status_code == 201
        assert response.json()["activation_mail_sent"] is True
    assert len(smtp_server.messages_to(holder.email)) - before == limit
    async with auth.runtime.session_maker() as session:
        count = (
            await session.execute(
                select(func.count()).select_from(Account).where(Account.email == holder.email)
            )
        ).scalar_one()
    assert count == 1


async def test_a_taken_address_takes_as_long_as_a_new_one(
    make_auth_app: AppFactory, smtp_server: SmtpTestServer
) -> None:
    """With the production Argon2id cost (the work that dominates a registration): the
    median answer times of new and taken addresses, measured interleaved, stay close."""
    async with make_auth_app(argon2_time_cost=2, argon2_memory_kib=19456) as auth:
        accounts = Accounts(auth, smtp_server)
        holders = [await accounts.active() for _ in range(3)]
        new_times: list[float] = []
        taken_times: list[float] = []
        for round_ in range(10):
            for taken in (False, True):
                address = (
                    holders[round_ % len(holders)].email if taken else accounts.new_email("timing")
                )
                started = time.perf_counter()
                response = await _register(auth.client, address, "correct horse battery")
                elapsed = time.perf_counter() - started
                assert response.status_code == 201
                (taken_times if taken else new_times).append(elapsed)
        new, taken_median = statistics.median(new_times), statistics.median(taken_times)
        ratio = taken_median / new
        assert 0.6 < ratio < 1.6, (new, taken_median)
