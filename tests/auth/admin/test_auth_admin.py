"""Administration of accounts: invitations with quota overrides, disabling, validation,
and that the routes are for administrators only."""

from __future__ import annotations

import uuid

import pytest

from tests.auth.support import (
    Accounts,
    AuthApp,
    bearer,
)

MIB = 1024 * 1024


@pytest.mark.both_databases
async def test_admin_invites_an_institution_and_overrides_quotas(
    auth: AuthApp, accounts: Accounts
) -> None:
    admin = await accounts.privileged(role="admin")
    headers = bearer(await accounts.login(admin))
    address = accounts.new_email("institution")
    created = await auth.client.post(
        "/auth/v1/admin/invitations",
        json={
            "email": address,
            "role": "institution",
            "name": "Radiology South",
            "default_code_validity_days": 60,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    invitation = created.json()
    assert (invitation["state"], invitation["mail_sent"]) == ("pending", True)
    assert "recovery_code" not in invitation
    assert "password" not in invitation

    institution = await accounts.accept_invitation(address, password="institution passphrase")
    seen = await auth.client.get(f"/auth/v1/admin/invitations/{invitation['id']}", headers=headers)
    assert seen.json()["state"] == "accepted"
    assert seen.json()["account_id"] == institution.id
    assert institution.recovery_code not in seen.text
    institution_id = institution.id

    tokens = await auth.client.post(
        "/auth/v1/login", json={"email": address, "password": "institution passphrase"}
    )
    assert tokens.status_code == 200
    me = (await auth.client.get("/auth/v1/me", headers=bearer(tokens.json()))).json()
    assert me["institution"] == {"name": "Radiology South", "default_code_validity_days": 60}

    patched = await auth.client.patch(
        f"/auth/v1/admin/accounts/{institution_id}",
        json={"quota_bytes": 5 * 1024 * MIB},
        headers=headers,
    )
    assert patched.status_code == 200
    assert patched.json()["quota_bytes"] == 5 * 1024 * MIB
    assert patched.json()["quota_is_default"] is False
    me = (await auth.client.get("/auth/v1/me", headers=bearer(tokens.json()))).json()
    assert me["quota_bytes"] == 5 * 1024 * MIB

    restored = await auth.client.patch(
        f"/auth/v1/admin/accounts/{institution_id}", json={"quota_bytes": None}, headers=headers
    )
    # An institution's default is no quota: retention governs what it publishes.
    assert restored.json()["quota_bytes"] is None
    assert restored.json()["quota_is_default"] is True

    fetched = await auth.client.get(f"/auth/v1/admin/accounts/{institution_id}", headers=headers)
    assert fetched.json()["email"] == address
    assert fetched.json()["default_code_validity_days"] == 60


async def test_an_admin_cannot_set_a_password(auth: AuthApp, accounts: Accounts) -> None:
    admin = await accounts.privileged(role="admin")
    headers = bearer(await accounts.login(admin))
    body = {"email": accounts.new_email(), "password": "referrer passphrase", "role": "referrer"}
    gone = await auth.client.post("/auth/v1/admin/accounts", json=body, headers=headers)
    assert gone.status_code in (404, 405)
    refused = await auth.client.post("/auth/v1/admin/invitations", json=body, headers=headers)
    assert refused.status_code == 422
    login = await auth.client.post(
        "/auth/v1/login", json={"email": body["email"], "password": body["password"]}
    )
    assert login.status_code == 401


async def test_admin_disables_an_account(auth: AuthApp, accounts: Accounts) -> None:
    admin = await accounts.privileged(role="admin")
    patient = await accounts.active()
    patient_tokens = await accounts.login(patient)
    headers = bearer(await accounts.login(admin))
    response = await auth.client.patch(
        f"/auth/v1/admin/accounts/{patient.id}", json={"disabled": True}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["disabled"] is True
    refresh = await auth.client.post(
        "/auth/v1/refresh", json={"refresh_token": patient_tokens["refresh_token"]}
    )
    assert refresh.status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"default_code_validity_days": 45}, 400),
        ({"default_code_validity_days": 120}, 422),
        ({"quota_bytes": -1}, 422),
        ({"role": "superuser"}, 422),
    ],
)
async def test_admin_updates_are_validated(
    auth: AuthApp, accounts: Accounts, body: dict[str, object], status: int
) -> None:
    admin = await accounts.privileged(role="admin")
    patient = await accounts.active()
    response = await auth.client.patch(
        f"/auth/v1/admin/accounts/{patient.id}",
        json=body,
        headers=bearer(await accounts.login(admin)),
    )
    assert response.status_code == status


async def test_admin_routes_are_for_admins(auth: AuthApp, accounts: Accounts) -> None:
    for role in ("patient", "referrer", "institution"):
        caller = await accounts.active(role=role)
        headers = bearer(await accounts.login(caller))
        create = await auth.client.post(
            "/auth/v1/admin/invitations",
            json={"email": accounts.new_email(), "role": "admin"},
            headers=headers,
        )
        assert create.status_code == 403
        assert create.json()["type"] == "urn:hds:problem:admin-only"
        listing = await auth.client.get("/auth/v1/admin/invitations", headers=headers)
        assert listing.status_code == 403
        patch = await auth.client.patch(
            f"/auth/v1/admin/accounts/{caller.id}", json={"role": "admin"}, headers=headers
        )
        assert patch.status_code == 403
        rotate = await auth.client.post("/auth/v1/admin/signing-keys/rotate", headers=headers)
        assert rotate.status_code == 403


async def test_admin_lookup_of_unknown_account_is_404(auth: AuthApp, accounts: Accounts) -> None:
    admin = await accounts.privileged(role="admin")
    response = await auth.client.get(
        f"/auth/v1/admin/accounts/{uuid.uuid4()}", headers=bearer(await accounts.login(admin))
    )
    assert response.status_code == 404
