"""Registration, activation mail (real SMTP / outbox), activation links, resend."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update

from hds_auth.models import Account, ActivationToken
from hds_common.testing.smtp import SmtpTestServer
from tests.auth.support import Accounts, AppFactory, AuthApp, without_request_id

RECOVERY_CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}$")


@pytest.mark.both_databases
async def test_register_mails_a_link_that_activates_once(
    auth: AuthApp, accounts: Accounts, smtp_server: SmtpTestServer
) -> None:
    address = accounts.new_email("Patient")
    response = await auth.client.post(
        "/auth/v1/register",
        json={"email": address, "password": "a long unusual passphrase", "role": "patient"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == address.lower()
    assert body["role"] == "patient"
    assert body["activated"] is False
    assert body["activation_mail_sent"] is True
    assert RECOVERY_CODE.match(body["recovery_code"])
    assert response.headers["cache-control"] == "no-store"

    [mail] = smtp_server.messages_to(address)
    assert mail["Subject"] == "Activate your HDS account"
    assert "no-reply@hds.example.org" in mail["From"]
    text = mail.get_content()
    assert "https://portal.example.org/auth/v1/activate?token=" in text
    # The recovery code is shown once, in the answer; never in a mail.
    assert body["recovery_code"] not in text

    login = {"email": address, "password": "a long unusual passphrase"}
    # Before activation the right password answers like a wrong one: whoever registers
    # chooses the password, so a distinct answer would tell them whether the address
    # was new (tests/auth/test_auth_enumeration.py).
    early = await auth.client.post("/auth/v1/login", json=login)
    wrong = await auth.client.post("/auth/v1/login", json={**login, "password": "not it at all"})
    assert early.status_code == wrong.status_code == 401
    assert early.headers["content-type"] == "application/problem+json"
    assert without_request_id(early.json()) == without_request_id(wrong.json())

    token = accounts.activation_token(address)
    activated = await auth.client.get("/auth/v1/activate", params={"token": token})
    assert activated.status_code == 200
    assert activated.json() == {
        "status": "activated",
        "account_id": body["id"],
        "email": address.lower(),
    }
    assert (await auth.client.post("/auth/v1/login", json=login)).status_code == 200

    reused = await auth.client.get("/auth/v1/activate", params={"token": token})
    assert reused.status_code == 409
    assert reused.json()["type"] == "urn:hds:problem:activation-token-used"


@pytest.mark.both_databases
async def test_expired_activation_link_is_refused(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.register()
    token = accounts.activation_token(account.email)
    async with auth.runtime.session_maker() as session, session.begin():
        await session.execute(
            update(ActivationToken).values(
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            )
        )
    response = await auth.client.post("/auth/v1/activate", json={"token": token})
    assert response.status_code == 400
    assert response.json()["type"] == "urn:hds:problem:activation-token-expired"
    login = await auth.client.post(
        "/auth/v1/login", json={"email": account.email, "password": account.password}
    )
    assert login.json()["type"] == "urn:hds:problem:invalid-credentials"


async def test_activation_link_expires_after_the_configured_time(
    auth: AuthApp, accounts: Accounts
) -> None:
    before = dt.datetime.now(dt.UTC)
    account = await accounts.register()
    async with auth.runtime.session_maker() as session:
        token = (
            await session.execute(
                select(ActivationToken).where(ActivationToken.account_id == uuid.UUID(account.id))
            )
        ).scalar_one()
    assert token.expires_at - before >= dt.timedelta(hours=48)
    assert token.expires_at - before < dt.timedelta(hours=48, minutes=1)


@pytest.mark.parametrize(
    "token",
    ["nonsense", "A" * 64, "", "x" * 201],
)
async def test_malformed_activation_tokens_get_a_clear_error(auth: AuthApp, token: str) -> None:
    response = await auth.client.post("/auth/v1/activate", json={"token": token})
    assert response.status_code in (400, 422)
    assert response.headers["content-type"] == "application/problem+json"
    if response.status_code == 400:
        assert response.json()["type"] == "urn:hds:problem:activation-token-invalid"


async def test_activation_token_with_a_wrong_secret_is_invalid(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.register()
    token = accounts.activation_token(account.email)
    # Same token id, different secret.
    from hds_common.crypto import b64d, b64e

    raw = bytearray(b64d(token))
    raw[-1] ^= 1
    response = await auth.client.get("/auth/v1/activate", params={"token": b64e(bytes(raw))})
    assert response.status_code == 400
    assert response.json()["type"] == "urn:hds:problem:activation-token-invalid"


async def test_resend_replaces_the_link(
    auth: AuthApp, accounts: Accounts, smtp_server: SmtpTestServer
) -> None:
    account = await accounts.register()
    first = accounts.activation_token(account.email)
    response = await auth.client.post("/auth/v1/activation/resend", json={"email": account.email})
    assert response.status_code == 202
    assert len(smtp_server.messages_to(account.email)) == 2
    second = accounts.activation_token(account.email)
    assert second != first
    old = await auth.client.get("/auth/v1/activate", params={"token": first})
    assert old.status_code == 400
    new = await auth.client.get("/auth/v1/activate", params={"token": second})
    assert new.status_code == 200


async def test_resend_answers_the_same_for_unknown_and_active_addresses(
    auth: AuthApp, accounts: Accounts, smtp_server: SmtpTestServer
) -> None:
    unknown = accounts.new_email("nobody")
    active = await accounts.active()
    mails_before = len(smtp_server.messages_to(active.email))
    for address in (unknown, active.email):
        response = await auth.client.post("/auth/v1/activation/resend", json={"email": address})
        assert response.status_code == 202
        assert response.json() == {"status": "accepted"}
    assert smtp_server.messages_to(unknown) == []
    assert len(smtp_server.messages_to(active.email)) == mails_before


async def test_resend_is_throttled_per_address(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.register()
    limit = auth.runtime.settings.activation_resends_per_account
    for _ in range(limit):
        ok = await auth.client.post("/auth/v1/activation/resend", json={"email": account.email})
        assert ok.status_code == 202
    refused = await auth.client.post("/auth/v1/activation/resend", json={"email": account.email})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["type"] == "urn:hds:problem:too-many-attempts"


@pytest.mark.parametrize(
    ("password", "slug", "words"),
    [
        ("short1!", "password-too-short", "at least 10 characters"),
        ("Password123", "password-too-common", "commonly used"),
        ("qwertyuiop", "password-too-common", "commonly used"),
        ("1234567890", "password-too-common", "commonly used"),
    ],
)
async def test_weak_passwords_are_rejected_with_a_clear_message(
    auth: AuthApp, accounts: Accounts, password: str, slug: str, words: str
) -> None:
    response = await auth.client.post(
        "/auth/v1/register", json={"email": accounts.new_email(), "password": password}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == f"urn:hds:problem:{slug}"
    assert words in body["detail"]


@pytest.mark.parametrize("role", ["institution", "admin", "root"])
async def test_self_registration_is_for_patients_and_referrers_only(
    auth: AuthApp, accounts: Accounts, role: str
) -> None:
    response = await auth.client.post(
        "/auth/v1/register",
        json={"email": accounts.new_email(), "password": "a long unusual passphrase", "role": role},
    )
    assert response.status_code == 422
    assert response.json()["type"] == "urn:hds:problem:validation-error"


async def test_referrer_registration(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.register(role="referrer")
    await accounts.activate(account.email)
    tokens = await accounts.login(account)
    claims = await (await auth.verifier()).verify(tokens["access_token"], audience="hds-account")
    assert claims.roles == ["referrer"]


@pytest.mark.parametrize("address", ["not-an-address", "a@b", "x@localhost"])
async def test_invalid_addresses_are_rejected(auth: AuthApp, address: str) -> None:
    response = await auth.client.post(
        "/auth/v1/register", json={"email": address, "password": "a long unusual passphrase"}
    )
    assert response.status_code == 422


async def test_without_smtp_mail_goes_to_the_outbox(
    make_auth_app: AppFactory, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    async with make_auth_app(smtp=None, outbox_dir=outbox) as harness:
        address = f"outbox-{uuid.uuid4().hex[:8]}@example.org"
        response = await harness.client.post(
            "/auth/v1/register", json={"email": address, "password": "a long unusual passphrase"}
        )
        assert response.status_code == 201
        assert response.json()["activation_mail_sent"] is True
        [path] = list(outbox.glob("*.eml"))
        assert path.stat().st_mode & 0o777 == 0o600
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        assert mail["To"] == address
        text = mail.get_content()
        token = re.search(r"activate\?token=([A-Za-z0-9_-]+)", text)
        assert token
        activated = await harness.client.get("/auth/v1/activate", params={"token": token.group(1)})
        assert activated.status_code == 200


async def test_registration_survives_an_unreachable_mail_server(make_auth_app: AppFactory) -> None:
    unreachable = SmtpTestServer()  # a free port with nothing listening (never started)
    async with make_auth_app(smtp=unreachable, smtp_timeout_seconds=2.0) as harness:
        address = f"nomail-{uuid.uuid4().hex[:8]}@example.org"
        response = await harness.client.post(
            "/auth/v1/register", json={"email": address, "password": "a long unusual passphrase"}
        )
        assert response.status_code == 201
        assert response.json()["activation_mail_sent"] is False
        async with harness.runtime.session_maker() as session:
            stored = (
                await session.execute(select(Account).where(Account.email == address))
            ).scalar_one()
        assert stored.activated_at is None
