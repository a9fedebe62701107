"""Onboarding by invitation: the administrator names address, role and limits; the
invitee's mailed link (single use, expiring, stored only as a hash) creates the account
with the invitee's own password, and only then its key pair; the recovery code is in that
answer alone. Resending replaces the link; revoking voids it."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from hds_auth.models import Account, Invitation
from hds_common.crypto import b64d
from hds_common.testing.smtp import SmtpTestServer
from tests.auth.support import (
    PASSWORD,
    RECOVERY_CODE,
    Accounts,
    AuthApp,
    bearer,
    without_request_id,
)


async def _admin_headers(accounts: Accounts) -> dict[str, str]:
    return bearer(await accounts.login(await accounts.privileged(role="admin")))


async def _invite(auth: AuthApp, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = await auth.client.post("/auth/v1/admin/invitations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    invitation: dict[str, object] = response.json()
    return invitation


async def _accept(
    auth: AuthApp, token: str, password: str = PASSWORD
) -> tuple[int, dict[str, Any]]:
    response = await auth.client.post(
        "/auth/v1/invitation/accept", json={"token": token, "password": password}
    )
    return response.status_code, response.json()


@pytest.mark.both_databases
async def test_the_account_and_its_key_pair_come_into_being_at_acceptance(
    auth: AuthApp, accounts: Accounts, smtp_server: SmtpTestServer
) -> None:
    headers = await _admin_headers(accounts)
    address = accounts.new_email("institution")
    invitation = await _invite(
        auth, headers, email=address.upper(), role="institution", name="Radiology East",
        quota_bytes=5 * 1024**3, default_code_validity_days=45,
    )  # fmt: skip
    assert invitation["email"] == address
    assert (invitation["state"], invitation["account_id"]) == ("pending", None)

    [mail] = smtp_server.messages_to(address)
    assert mail["Subject"] == "Your invitation to HDS"
    token = accounts.invitation_token(address)
    assert "https://portal.example.org/auth/v1/invitation?token=" in str(mail.get_content())
    # Before acceptance there is no account; the database holds only the link's hash.
    async with auth.runtime.session_maker() as session:
        assert (
            await session.execute(select(Account).where(Account.email == address))
        ).first() is None
        row = (
            await session.execute(select(Invitation).where(Invitation.email == address))
        ).scalar_one()
    secret = b64d(token)[16:]
    assert row.secret_hash == hashlib.sha256(secret).digest()
    assert token.encode() not in row.secret_hash
    assert secret not in row.secret_hash

    offer = await auth.client.get("/auth/v1/invitation", params={"token": token})
    assert offer.status_code == 200
    assert offer.json()["email"] == address
    assert (offer.json()["role"], offer.json()["name"]) == ("institution", "Radiology East")
    assert offer.headers["cache-control"] == "no-store"

    status, accepted = await _accept(auth, token)
    assert status == 201, accepted
    assert RECOVERY_CODE.match(accepted["recovery_code"])
    assert (accepted["email"], accepted["role"]) == (address, "institution")
    # Recovery code and password reach nothing but this answer.
    for message in smtp_server.messages_to(address):
        assert accepted["recovery_code"] not in str(message.get_content())
    tokens = await auth.client.post("/auth/v1/login", json={"email": address, "password": PASSWORD})
    assert tokens.status_code == 200
    me = (await auth.client.get("/auth/v1/me", headers=bearer(tokens.json()))).json()
    assert me["id"] == accepted["account_id"]
    assert me["quota_bytes"] == 5 * 1024**3
    assert me["institution"] == {"name": "Radiology East", "default_code_validity_days": 45}
    reset = await auth.client.post(
        "/auth/v1/password/reset",
        json={
            "email": address,
            "recovery_code": accepted["recovery_code"],
            "new_password": "another long passphrase",
        },
    )
    assert reset.status_code == 200, reset.text

    seen = await auth.client.get(f"/auth/v1/admin/invitations/{invitation['id']}", headers=headers)
    assert seen.json()["state"] == "accepted"
    assert seen.json()["account_id"] == accepted["account_id"]
    listing = await auth.client.get("/auth/v1/admin/invitations", headers=headers)
    assert invitation["id"] in [i["id"] for i in listing.json()]
    assert accepted["recovery_code"] not in listing.text

    # Single use.
    again, body = await _accept(auth, token, "yet another passphrase")
    assert (again, body["type"]) == (409, "urn:hds:problem:invitation-used")


async def test_an_expired_invitation_is_refused_and_a_resend_renews_it(
    auth: AuthApp, accounts: Accounts, smtp_server: SmtpTestServer
) -> None:
    headers = await _admin_headers(accounts)
    address = accounts.new_email("referrer")
    invitation = await _invite(auth, headers, email=address, role="referrer")
    first = accounts.invitation_token(address)
    async with auth.runtime.session_maker() as session, session.begin():
        await session.execute(
            update(Invitation)
            .where(Invitation.email == address)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    status, body = await _accept(auth, first)
    assert (status, body["type"]) == (400, "urn:hds:problem:invitation-expired")
    offer = await auth.client.get("/auth/v1/invitation", params={"token": first})
    assert offer.json()["type"] == "urn:hds:problem:invitation-expired"
    seen = await auth.client.get(f"/auth/v1/admin/invitations/{invitation['id']}", headers=headers)
    assert seen.json()["state"] == "expired"

    resent = await auth.client.post(
        f"/auth/v1/admin/invitations/{invitation['id']}/resend", headers=headers
    )
    assert resent.status_code == 200, resent.text
    assert (resent.json()["state"], resent.json()["mail_sent"]) == ("pending", True)
    assert len(smtp_server.messages_to(address)) == 2
    second = accounts.invitation_token(address)
    assert second != first
    # The old link stays void; the new one works.
    status, body = await _accept(auth, first)
    assert (status, body["type"]) == (400, "urn:hds:problem:invitation-invalid")
    status, body = await _accept(auth, second)
    assert status == 201, body
    resend_accepted = await auth.client.post(
        f"/auth/v1/admin/invitations/{invitation['id']}/resend", headers=headers
    )
    assert resend_accepted.status_code == 409
    assert resend_accepted.json()["type"] == "urn:hds:problem:invitation-accepted"


async def test_invitations_expire_after_the_configured_time(
    auth: AuthApp, accounts: Accounts
) -> None:
    before = dt.datetime.now(dt.UTC)
    invitation = await _invite(
        auth, await _admin_headers(accounts), email=accounts.new_email(), role="patient"
    )
    expires = dt.datetime.fromisoformat(str(invitation["expires_at"]))
    assert dt.timedelta(days=7) <= expires - before < dt.timedelta(days=7, minutes=1)


async def test_a_revoked_invitation_opens_nothing(auth: AuthApp, accounts: Accounts) -> None:
    headers = await _admin_headers(accounts)
    address = accounts.new_email()
    invitation = await _invite(auth, headers, email=address, role="admin")
    token = accounts.invitation_token(address)
    revoked = await auth.client.delete(
        f"/auth/v1/admin/invitations/{invitation['id']}", headers=headers
    )
    assert revoked.status_code == 204
    status, body = await _accept(auth, token)
    assert (status, body["type"]) == (400, "urn:hds:problem:invitation-invalid")
    seen = await auth.client.get(f"/auth/v1/admin/invitations/{invitation['id']}", headers=headers)
    assert seen.json()["state"] == "revoked"
    resend = await auth.client.post(
        f"/auth/v1/admin/invitations/{invitation['id']}/resend", headers=headers
    )
    assert resend.json()["type"] == "urn:hds:problem:invitation-revoked"
    # A new invitation of the same address is fine once the old one is revoked.
    await _invite(auth, headers, email=address, role="referrer")


async def test_bad_links_and_weak_passwords_are_clear_4xx_and_burn_nothing(
    auth: AuthApp, accounts: Accounts
) -> None:
    headers = await _admin_headers(accounts)
    address = accounts.new_email()
    await _invite(auth, headers, email=address, role="institution")
    token = accounts.invitation_token(address)
    status, body = await _accept(auth, token, "Password123")
    assert (status, body["type"]) == (422, "urn:hds:problem:password-too-common")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answers = []
    for bad in (forged, "not-a-token", "A" * 64):
        status, body = await _accept(auth, bad)
        answers.append((status, without_request_id(body)))
    assert {answer[0] for answer in answers} == {400}
    assert answers[0] == answers[1] == answers[2]
    empty = await auth.client.post("/auth/v1/invitation/accept", json={"token": token})
    assert empty.status_code == 422
    assert empty.headers["content-type"] == "application/problem+json"
    status, body = await _accept(auth, token)
    assert status == 201, body


async def test_conflicts_when_inviting(auth: AuthApp, accounts: Accounts) -> None:
    headers = await _admin_headers(accounts)
    existing = await accounts.active(role="referrer")
    taken = await auth.client.post(
        "/auth/v1/admin/invitations",
        json={"email": existing.email, "role": "institution"},
        headers=headers,
    )
    assert (taken.status_code, taken.json()["type"]) == (409, "urn:hds:problem:email-taken")
    address = accounts.new_email()
    await _invite(auth, headers, email=address, role="institution")
    twice = await auth.client.post(
        "/auth/v1/admin/invitations", json={"email": address, "role": "admin"}, headers=headers
    )
    assert (twice.status_code, twice.json()["type"]) == (409, "urn:hds:problem:invitation-pending")
    validity = await auth.client.post(
        "/auth/v1/admin/invitations",
        json={"email": accounts.new_email(), "role": "patient", "default_code_validity_days": 40},
        headers=headers,
    )
    assert (validity.status_code, validity.json()["type"]) == (
        400,
        "urn:hds:problem:institution-only",
    )
    unknown = await auth.client.post(
        f"/auth/v1/admin/invitations/{uuid.uuid4()}/resend", headers=headers
    )
    assert (unknown.status_code, unknown.json()["type"]) == (
        404,
        "urn:hds:problem:invitation-not-found",
    )
