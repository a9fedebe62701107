"""Password reset with the recovery code, password change, and that the user's data
stays readable across both (the private key is rewrapped, never replaced)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from jose import jwt

from hds_common.crypto import b64d, generate_package_key, open_grant, open_sealed, seal
from tests.auth.support import (
    Accounts,
    AppFactory,
    AuthApp,
    StorageStandIn,
    bearer,
    without_request_id,
)

# Stands in for the storage service's user key slot: a package key sealed to the user.
USER_SLOT_CONTEXT = b"hds/user-slot/test"
NEW_PASSWORD = "a brand new passphrase"


async def _reset(
    auth: AuthApp, email: str, code: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    response: httpx.Response = await auth.client.post(
        "/auth/v1/password/reset",
        json={"email": email, "recovery_code": code, "new_password": password},
    )
    return response


async def _login(auth: AuthApp, email: str, password: str) -> httpx.Response:
    body = {"email": email, "password": password}
    response: httpx.Response = await auth.client.post("/auth/v1/login", json=body)
    return response


@pytest.mark.both_databases
async def test_sealed_data_still_opens_after_a_reset(
    auth: AuthApp,
    accounts: Accounts,
    storage_grant_key: X25519PrivateKey,
    storage_stand_in: StorageStandIn,
) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    me = await auth.client.get("/auth/v1/me", headers=bearer(tokens))
    public_key = b64d(me.json()["public_key"])

    # An institution delivers: the package key sealed to the user's public key.
    package_key = generate_package_key()
    user_slot = seal(public_key, package_key, USER_SLOT_CONTEXT)

    response = await _reset(auth, account.email, account.recovery_code)
    assert response.status_code == 200, response.text
    new_code = response.json()["recovery_code"]
    assert new_code != account.recovery_code
    assert response.headers["cache-control"] == "no-store"

    assert (await _login(auth, account.email, account.password)).status_code == 401
    login = await _login(auth, account.email, NEW_PASSWORD)
    assert login.status_code == 200
    verifier = await auth.verifier()
    claims = await verifier.verify(login.json()["access_token"], audience="hds-account")
    assert claims.grant
    # What storage does: open the grant with its own key, the key session with the
    # grant's secret, then the slot with the user's key.
    grant = open_grant(storage_grant_key, claims.grant)
    assert grant.kind == "user"
    assert grant.subject == account.id
    user_key = storage_stand_in.open_key(claims.grant, kind="user", subject=account.id)
    assert open_sealed(user_key, user_slot, USER_SLOT_CONTEXT) == package_key

    # The old recovery code is void, the new one works.
    again = await _reset(auth, account.email, account.recovery_code, "yet another passphrase")
    assert again.status_code == 401
    assert (
        await _reset(auth, account.email, new_code, "yet another passphrase")
    ).status_code == 200


async def test_wrong_recovery_code_and_unknown_address_get_the_same_answer(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.active()
    wrong = await _reset(auth, account.email, "00000-00000-00000-00000-00000")
    unknown = await _reset(auth, accounts.new_email("nobody"), account.recovery_code)
    garbage = await _reset(auth, account.email, "not a code")
    for response in (wrong, unknown, garbage):
        assert response.status_code == 401
        assert response.json()["type"] == "urn:hds:problem:invalid-recovery-code"
    assert without_request_id(wrong.json()) == without_request_id(unknown.json())
    # Without the recovery code the password is unchanged.
    assert (await _login(auth, account.email, account.password)).status_code == 200
    assert (await _login(auth, account.email, NEW_PASSWORD)).status_code == 401


async def test_recovery_code_is_accepted_in_any_case_and_spacing(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.active()
    typed = " ".join(account.recovery_code.lower().split("-"))
    assert (await _reset(auth, account.email, typed)).status_code == 200


async def test_reset_ends_every_session(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    assert (await _reset(auth, account.email, account.recovery_code)).status_code == 200
    refresh = await auth.client.post(
        "/auth/v1/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 401


async def test_reset_applies_the_password_policy_first(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    response = await _reset(auth, account.email, account.recovery_code, "password123")
    assert response.status_code == 422
    assert response.json()["type"] == "urn:hds:problem:password-too-common"
    # The code was not spent on the refused attempt.
    assert (await _reset(auth, account.email, account.recovery_code)).status_code == 200


async def test_resets_are_throttled(make_auth_app: AppFactory, accounts: Accounts) -> None:
    async with make_auth_app(reset_failures_per_account=3, reset_failures_per_client=50) as app:
        account = await accounts.active()
        for _ in range(3):
            response = await _reset(app, account.email, "00000-00000-00000-00000-00000")
            assert response.status_code == 401
        blocked = await _reset(app, account.email, account.recovery_code)
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
        assert blocked.json()["type"] == "urn:hds:problem:too-many-attempts"


async def test_resets_are_throttled_per_client(
    make_auth_app: AppFactory, accounts: Accounts
) -> None:
    async with make_auth_app(reset_failures_per_account=50, reset_failures_per_client=2) as app:
        account = await accounts.active()
        async with app.client_from("192.0.2.50") as attacker, app.client_from("192.0.2.51") as user:
            for _ in range(2):
                response = await attacker.post(
                    "/auth/v1/password/reset",
                    json={
                        "email": accounts.new_email("spray"),
                        "recovery_code": "00000-00000-00000-00000-00000",
                        "new_password": NEW_PASSWORD,
                    },
                )
                assert response.status_code == 401
            body = {
                "email": account.email,
                "recovery_code": account.recovery_code,
                "new_password": NEW_PASSWORD,
            }
            assert (await attacker.post("/auth/v1/password/reset", json=body)).status_code == 429
            assert (await user.post("/auth/v1/password/reset", json=body)).status_code == 200


@pytest.mark.both_databases
async def test_password_change_rewraps_and_keeps_this_session_only(
    auth: AuthApp, accounts: Accounts, storage_stand_in: StorageStandIn
) -> None:
    account = await accounts.active()
    other_session = await accounts.login(account)
    this_session = await accounts.login(account)
    public_key = b64d(
        (await auth.client.get("/auth/v1/me", headers=bearer(this_session))).json()["public_key"]
    )
    package_key = generate_package_key()
    user_slot = seal(public_key, package_key, USER_SLOT_CONTEXT)

    response = await auth.client.post(
        "/auth/v1/password/change",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
        headers=bearer(this_session),
    )
    assert response.status_code == 204, response.text

    assert (await _login(auth, account.email, account.password)).status_code == 401
    login = await _login(auth, account.email, NEW_PASSWORD)
    assert login.status_code == 200
    user_key = storage_stand_in.open_key(
        jwt.get_unverified_claims(login.json()["access_token"])["grant"],
        kind="user",
        subject=account.id,
    )
    assert open_sealed(user_key, user_slot, USER_SLOT_CONTEXT) == package_key

    # The session that changed the password goes on; the other one has ended.
    kept = await auth.client.post(
        "/auth/v1/refresh", json={"refresh_token": this_session["refresh_token"]}
    )
    assert kept.status_code == 200
    ended = await auth.client.post(
        "/auth/v1/refresh", json={"refresh_token": other_session["refresh_token"]}
    )
    assert ended.status_code == 401
    # The recovery code still works after a change.
    assert (
        await _reset(auth, account.email, account.recovery_code, "third passphrase ok")
    ).status_code == 200


async def test_password_change_needs_the_current_password(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    headers = bearer(tokens)
    wrong = await auth.client.post(
        "/auth/v1/password/change",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert wrong.status_code == 403
    assert wrong.json()["type"] == "urn:hds:problem:invalid-password"
    weak = await auth.client.post(
        "/auth/v1/password/change",
        json={"current_password": account.password, "new_password": "short"},
        headers=headers,
    )
    assert weak.status_code == 422
    assert weak.json()["type"] == "urn:hds:problem:password-too-short"
    anonymous = await auth.client.post(
        "/auth/v1/password/change",
        json={"current_password": account.password, "new_password": NEW_PASSWORD},
    )
    assert anonymous.status_code == 401
    assert (await _login(auth, account.email, account.password)).status_code == 200


async def test_two_resets_with_the_same_code_cannot_both_succeed(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.active()
    first, second = await asyncio.gather(
        _reset(auth, account.email, account.recovery_code, "first new passphrase"),
        _reset(auth, account.email, account.recovery_code, "second new passphrase"),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 401]
    winner = first if first.status_code == 200 else second
    password = "first new passphrase" if winner is first else "second new passphrase"
    assert (await _login(auth, account.email, password)).status_code == 200
    # The code the winner got is the one that works now.
    new_code = winner.json()["recovery_code"]
    assert (await _reset(auth, account.email, new_code, "third new passphrase")).status_code == 200
