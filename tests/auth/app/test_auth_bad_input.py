"""Regression tests of bad input the property-based tests (test_auth_fuzz.py) found
answered with 500: text PostgreSQL cannot store or mail headers cannot carry, and
quotas beyond the BIGINT column. Each is now a 422 problem and changes nothing."""

from __future__ import annotations

import pytest

from hds_auth.schemas import MAX_QUOTA_BYTES
from hds_common.errors import PROBLEM_CONTENT_TYPE
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token
from hds_common.testing.smtp import SmtpTestServer
from tests.auth.support import Accounts, AuthApp, bearer

# NUL cannot be stored in PostgreSQL text; CR/LF, NEL (U+0085) and U+2028 end a mail
# header (Python's email package splits header values at them).
CONTROL_CHARACTERS = [
    "a\x00b",
    "a\r\nBcc: victim@example.org",
    "tab\there",
    "\x1b[31m",
    "next\x85line",
    "line\u2028separator",
]


def assert_validation_problem(response_status: int, body: dict[str, object]) -> None:
    assert response_status == 422, body
    assert body["type"] == "urn:hds:problem:validation-error"


@pytest.mark.parametrize("name", CONTROL_CHARACTERS)
async def test_names_with_control_characters_are_refused(
    auth: AuthApp, accounts: Accounts, name: str
) -> None:
    admin = await accounts.active(role="admin")
    institution = await accounts.active(role="institution")
    admin_headers = bearer(await accounts.login(admin))
    institution_headers = bearer(await accounts.login(institution))
    email = accounts.new_email()
    attempts = [
        auth.client.post(
            "/auth/v1/register",
            json={"email": email, "password": "correct horse battery", "name": name},
        ),
        auth.client.post(
            "/auth/v1/admin/invitations",
            json={"email": email, "role": "institution", "name": name},
            headers=admin_headers,
        ),
        auth.client.patch(
            f"/auth/v1/admin/accounts/{institution.id}", json={"name": name}, headers=admin_headers
        ),
        auth.client.patch("/auth/v1/me/settings", json={"name": name}, headers=institution_headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
        assert_validation_problem(response.status_code, response.json())
        assert "control characters" in response.json()["detail"]
    # Nothing was stored: no account under the address, the institution keeps its name.
    login = await auth.client.post(
        "/auth/v1/login", json={"email": email, "password": "correct horse battery"}
    )
    assert login.status_code == 401
    me = await auth.client.get("/auth/v1/me", headers=institution_headers)
    assert me.json()["name"] is None


@pytest.mark.parametrize("email", ["a\x00b@example.org", "a@example.org\r\n", "\x7f@example.org"])
async def test_looking_up_addresses_with_control_characters_is_refused(
    auth: AuthApp, accounts: Accounts, email: str
) -> None:
    admin = await accounts.active(role="admin")
    headers = bearer(await accounts.login(admin))
    attempts = [
        auth.client.post("/auth/v1/login", json={"email": email, "password": "x"}),
        auth.client.post("/auth/v1/activation/resend", json={"email": email}),
        auth.client.post(
            "/auth/v1/password/reset",
            json={"email": email, "recovery_code": "x", "new_password": "correct horse battery"},
        ),
        auth.client.post(
            "/auth/v1/admin/invitations", json={"email": email, "role": "referrer"}, headers=headers
        ),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
        assert_validation_problem(response.status_code, response.json())


async def test_quota_beyond_the_database_column_is_refused(
    auth: AuthApp, accounts: Accounts
) -> None:
    admin = await accounts.active(role="admin")
    institution = await accounts.active(role="institution")
    headers = bearer(await accounts.login(admin))
    too_big = MAX_QUOTA_BYTES + 1
    created = await auth.client.post(
        "/auth/v1/admin/invitations",
        json={"email": accounts.new_email(), "role": "institution", "quota_bytes": too_big},
        headers=headers,
    )
    assert_validation_problem(created.status_code, created.json())
    path = f"/auth/v1/admin/accounts/{institution.id}"
    updated = await auth.client.patch(path, json={"quota_bytes": too_big}, headers=headers)
    assert_validation_problem(updated.status_code, updated.json())
    assert (await auth.client.get(path, headers=headers)).json()["quota_is_default"] is True
    # The largest value the column holds is fine.
    largest = await auth.client.patch(path, json={"quota_bytes": MAX_QUOTA_BYTES}, headers=headers)
    assert largest.status_code == 200, largest.text
    assert largest.json()["quota_bytes"] == MAX_QUOTA_BYTES


async def test_notification_subjects_are_one_line_texts_may_be_several(
    auth: AuthApp, accounts: Accounts, smtp_server: SmtpTestServer
) -> None:
    account = await accounts.active()
    secret = auth.runtime.settings.suite.internal_secret.get_secret_value()
    headers = {SERVICE_TOKEN_HEADER: mint_service_token(secret, "storage")}
    before = len(smtp_server.messages_to(account.email))
    for subject in ("Hi\r\nBcc: victim@example.org", "Hi\x85Bcc: x@example.org", "Hi\u2028"):
        injected = await auth.client.post(
            "/internal/v1/notifications",
            json={"account_id": account.id, "subject": subject, "text": "x"},
            headers=headers,
        )
        assert_validation_problem(injected.status_code, injected.json())
    assert len(smtp_server.messages_to(account.email)) == before
    sent = await auth.client.post(
        "/internal/v1/notifications",
        json={"account_id": account.id, "subject": "New results", "text": "Line 1\r\nLine 2\n"},
        headers=headers,
    )
    assert sent.status_code == 202, sent.text
    mails = smtp_server.messages_to(account.email)
    assert len(mails) == before + 1
    assert "victim@example.org" not in str(mails[-1])
