"""/me (quota and usage from storage), settings, public-key look-ups."""

from __future__ import annotations

import uuid

import pytest

from hds_common.crypto import b64d
from tests.auth.support import (
    Accounts,
    AppFactory,
    AuthApp,
    StorageStandIn,
    bearer,
    without_request_id,
)

MIB = 1024 * 1024


@pytest.mark.both_databases
async def test_me_shows_settings_quota_and_usage_from_storage(
    auth: AuthApp, accounts: Accounts, storage_stand_in: StorageStandIn
) -> None:
    account = await accounts.active()
    storage_stand_in.usage[account.id] = 123_456
    response = await auth.client.get("/auth/v1/me", headers=bearer(await accounts.login(account)))
    assert response.status_code == 200
    me = response.json()
    assert me["id"] == account.id
    assert me["email"] == account.email
    assert me["role"] == "patient"
    assert me["settings"] == {
        "deletion_mode": "automatic",
        "notifications": True,
        # Nobody pushes data into an account before its holder allows it.
        "accept_shares": False,
    }
    assert me["quota_bytes"] == 1024 * MIB
    assert me["used_bytes"] == 123_456
    assert me["institution"] is None
    assert len(b64d(me["public_key"])) == 32
    # The call to storage was authenticated as the auth service.
    assert storage_stand_in.calls == ["auth"]


async def test_me_shows_usage_null_when_storage_cannot_tell(
    auth: AuthApp, accounts: Accounts, storage_stand_in: StorageStandIn
) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    storage_stand_in.usage_down = True
    response = await auth.client.get("/auth/v1/me", headers=bearer(tokens))
    assert response.status_code == 200
    assert response.json()["used_bytes"] is None
    assert response.json()["quota_bytes"] == 1024 * MIB


async def test_account_routes_answer_502_while_the_session_cannot_be_checked(
    make_auth_app: AppFactory, accounts: Accounts
) -> None:
    """Storage holds the key sessions: without it no service can tell a logged-out token
    from a live one, so none pretends to (fail closed)."""
    async with make_auth_app(with_storage=False) as harness:
        account = await accounts.active()
        tokens = await accounts.login(account)
        response = await harness.client.get("/auth/v1/me", headers=bearer(tokens))
        assert response.status_code == 502
        assert response.json()["type"] == "urn:hds:problem:storage-unavailable"


async def test_settings_change(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    headers = bearer(await accounts.login(account))
    response = await auth.client.patch(
        "/auth/v1/me/settings",
        json={"deletion_mode": "manual", "notifications": False},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json()["settings"] == {
        "deletion_mode": "manual",
        "notifications": False,
        "accept_shares": False,
    }
    response = await auth.client.patch(
        "/auth/v1/me/settings", json={"accept_shares": True}, headers=headers
    )
    assert response.json()["settings"] == {
        "deletion_mode": "manual",
        "notifications": False,
        "accept_shares": True,
    }
    me = await auth.client.get("/auth/v1/me", headers=headers)
    assert me.json()["settings"]["accept_shares"] is True


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"deletion_mode": "sometimes"}, 422),
        ({"notifications": "maybe"}, 422),
        ({"unknown_setting": True}, 422),
        ({"deletion_mode": None}, 400),
        ({"default_code_validity_days": 45}, 403),
    ],
)
async def test_invalid_settings_are_refused(
    auth: AuthApp, accounts: Accounts, body: dict[str, object], status: int
) -> None:
    account = await accounts.active()
    response = await auth.client.patch(
        "/auth/v1/me/settings", json=body, headers=bearer(await accounts.login(account))
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"


async def test_institution_profile(auth: AuthApp, accounts: Accounts) -> None:
    institution = await accounts.privileged(role="institution", name="Radiology North")
    headers = bearer(await accounts.login(institution))
    me = (await auth.client.get("/auth/v1/me", headers=headers)).json()
    assert me["institution"] == {"name": "Radiology North", "default_code_validity_days": 30}
    changed = await auth.client.patch(
        "/auth/v1/me/settings",
        json={"name": "Radiology North-East", "default_code_validity_days": 90},
        headers=headers,
    )
    assert changed.status_code == 200
    assert changed.json()["institution"] == {
        "name": "Radiology North-East",
        "default_code_validity_days": 90,
    }
    for days in (29, 91):
        refused = await auth.client.patch(
            "/auth/v1/me/settings", json={"default_code_validity_days": days}, headers=headers
        )
        assert refused.status_code == 422


async def test_public_key_by_account_id(auth: AuthApp, accounts: Accounts) -> None:
    patient = await accounts.active()
    institution = await accounts.privileged(role="institution", name="Radiology West")
    headers = bearer(await accounts.login(patient))
    response = await auth.client.get(f"/auth/v1/public-keys/{institution.id}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["account_id"] == institution.id
    assert body["role"] == "institution"
    assert body["name"] == "Radiology West"
    assert len(b64d(body["public_key"])) == 32
    unknown = await auth.client.get(f"/auth/v1/public-keys/{uuid.uuid4()}", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:hds:problem:account-not-found"
    garbage = await auth.client.get("/auth/v1/public-keys/not-a-uuid", headers=headers)
    assert garbage.status_code == 422
    anonymous = await auth.client.get(f"/auth/v1/public-keys/{institution.id}")
    assert anonymous.status_code == 401


@pytest.mark.parametrize("role", ["patient", "referrer", "institution", "admin"])
async def test_no_public_key_look_up_tells_registered_from_unknown_addresses(
    auth: AuthApp, accounts: Accounts, role: str
) -> None:
    """The e-mail form of the look-up told any caller which addresses have accounts (and
    their role); it is gone: every address, and every form of the request, gets the same
    answer. Sharing by address happens inside storage (the internal look-up)."""
    caller = await accounts.active(role=role)
    headers = bearer(await accounts.login(caller))
    registered = await accounts.active(role="referrer")
    answers = []
    for address in (registered.email, registered.email.upper(), accounts.new_email("nobody")):
        response = await auth.client.get(
            "/auth/v1/public-keys", params={"email": address}, headers=headers
        )
        assert "referrer" not in response.text
        answers.append((response.status_code, without_request_id(response.json())))
    assert answers[0][0] == 404
    assert answers[0] == answers[1] == answers[2]


async def test_public_key_by_id_answers_an_unactivated_account_like_an_unknown_id(
    auth: AuthApp, accounts: Accounts
) -> None:
    """A registration answers an id; looking it up must not tell whether the
    registration made an account (new address) or met an existing one."""
    caller = await accounts.active(role="referrer")
    headers = bearer(await accounts.login(caller))
    pending = await accounts.register()  # registered, not activated
    answers = []
    for account_id in (pending.id, str(uuid.uuid4())):
        response = await auth.client.get(f"/auth/v1/public-keys/{account_id}", headers=headers)
        answers.append((response.status_code, without_request_id(response.json())))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
    await accounts.activate(pending.email)
    found = await auth.client.get(f"/auth/v1/public-keys/{pending.id}", headers=headers)
    assert found.status_code == 200
