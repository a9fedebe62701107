"""Login tokens and their grant, refresh-token rotation and reuse detection, logout."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from jose import jwt
from sqlalchemy import select, update

from hds_auth.models import Account, RefreshToken
from hds_common.crypto import (
    b64d,
    open_grant,
    private_key_from_bytes,
    public_key_to_bytes,
)
from hds_common.errors import Unauthorized
from tests.auth.support import Accounts, AppFactory, AuthApp, StorageStandIn, bearer


@pytest.mark.both_databases
async def test_login_issues_an_es256_account_token_with_a_user_grant(
    auth: AuthApp,
    accounts: Accounts,
    storage_grant_key: X25519PrivateKey,
    storage_stand_in: StorageStandIn,
) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_expires_in"] == auth.runtime.settings.refresh_token_ttl_seconds

    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "ES256"
    jwks = await auth.jwks()
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}

    claims = await (await auth.verifier()).verify(tokens["access_token"], audience="hds-account")
    assert claims.sub == account.id
    assert claims.iss == "hds-auth-test"
    assert claims.aud == "hds-account"
    assert claims.roles == ["patient"]
    assert claims.iat is not None
    assert claims.exp - claims.iat == 900
    assert claims.nbf == claims.iat
    assert claims.jti

    # Only the storage service's key opens the grant; inside is no key, only the key
    # session (held by storage until the token expires) and its secret.
    assert claims.grant
    grant = open_grant(storage_grant_key, claims.grant)
    assert grant.kind == "user"
    assert grant.subject == account.id
    assert grant.expires_at == claims.exp
    assert claims.ksid == grant.session_id
    assert storage_stand_in.sessions[grant.session_id].expires_at == claims.exp
    me = await auth.client.get("/auth/v1/me", headers=bearer(tokens))
    user_key = storage_stand_in.open_key(claims.grant, kind="user", subject=account.id)
    user_public = public_key_to_bytes(private_key_from_bytes(user_key).public_key())
    assert user_public == b64d(me.json()["public_key"])
    assert user_key not in b64d(claims.grant)


@pytest.mark.both_databases
async def test_refresh_rotates_and_reuse_revokes_the_whole_family(
    auth: AuthApp,
    accounts: Accounts,
    storage_grant_key: X25519PrivateKey,
    storage_stand_in: StorageStandIn,
) -> None:
    account = await accounts.active()
    first = await accounts.login(account)

    second = (await _refresh(auth, first["refresh_token"])).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    verifier = await auth.verifier()
    claims = await verifier.verify(second["access_token"], audience="hds-account")
    assert claims.sub == account.id
    # A fresh grant, opened with the key the refresh token row kept wrapped.
    assert claims.grant
    grant = open_grant(storage_grant_key, claims.grant)
    assert grant.expires_at == claims.exp
    first_grant = open_grant(storage_grant_key, _claims(first)["grant"])
    assert grant.session_id != first_grant.session_id
    assert storage_stand_in.open_key(
        claims.grant, kind="user", subject=account.id
    ) == storage_stand_in.open_key(_claims(first)["grant"], kind="user", subject=account.id)

    third = (await _refresh(auth, second["refresh_token"])).json()

    # The first token again: a copy is in use somewhere. The session ends for everyone.
    replay = await _refresh(auth, first["refresh_token"])
    assert replay.status_code == 401
    assert replay.json()["type"] == "urn:hds:problem:invalid-refresh-token"
    assert "used before" in replay.json()["detail"]
    for tokens in (second, third):
        after = await _refresh(auth, tokens["refresh_token"])
        assert after.status_code == 401


async def test_reuse_revokes_only_its_own_family(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    laptop = await accounts.login(account)
    phone = await accounts.login(account)
    await _refresh(auth, laptop["refresh_token"])
    assert (await _refresh(auth, laptop["refresh_token"])).status_code == 401
    assert (await _refresh(auth, phone["refresh_token"])).status_code == 200


async def test_logout_ends_the_session(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    rotated = (await _refresh(auth, tokens["refresh_token"])).json()
    response = await auth.client.post(
        "/auth/v1/logout", json={"refresh_token": rotated["refresh_token"]}
    )
    assert response.status_code == 204
    after = await _refresh(auth, rotated["refresh_token"])
    assert after.status_code == 401
    assert "ended" in after.json()["detail"]
    # Logging out twice, or with nonsense, is not an error.
    again = await auth.client.post(
        "/auth/v1/logout", json={"refresh_token": rotated["refresh_token"]}
    )
    assert again.status_code == 204
    nonsense = await auth.client.post("/auth/v1/logout", json={"refresh_token": "nonsense"})
    assert nonsense.status_code == 204


@pytest.mark.parametrize("token", ["nonsense", "A" * 64, "QUFB"])
async def test_malformed_refresh_tokens_are_401(auth: AuthApp, token: str) -> None:
    response = await _refresh(auth, token)
    assert response.status_code == 401
    assert response.json()["type"] == "urn:hds:problem:invalid-refresh-token"


async def test_refresh_token_with_a_wrong_secret_is_401(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    raw = bytearray(b64d(tokens["refresh_token"]))
    raw[-1] ^= 0x01
    from hds_common.crypto import b64e

    response = await _refresh(auth, b64e(bytes(raw)))
    assert response.status_code == 401
    # The genuine token was not consumed by the forgery.
    assert (await _refresh(auth, tokens["refresh_token"])).status_code == 200


async def test_expired_refresh_token_is_401(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    async with auth.runtime.session_maker() as session, session.begin():
        await session.execute(
            update(RefreshToken).values(
                expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            )
        )
    response = await _refresh(auth, tokens["refresh_token"])
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def test_disabled_account_cannot_refresh_or_log_in(auth: AuthApp, accounts: Accounts) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    async with auth.runtime.session_maker() as session, session.begin():
        await session.execute(
            update(Account).where(Account.id == uuid.UUID(account.id)).values(disabled=True)
        )
    assert (await _refresh(auth, tokens["refresh_token"])).status_code == 401
    login = await auth.client.post(
        "/auth/v1/login", json={"email": account.email, "password": account.password}
    )
    assert login.status_code == 403
    assert login.json()["type"] == "urn:hds:problem:account-disabled"
    # The still unexpired access token no longer opens the account's routes.
    me = await auth.client.get("/auth/v1/me", headers=bearer(tokens))
    assert me.status_code == 401


async def test_the_database_never_holds_a_private_key_in_clear(
    auth: AuthApp, accounts: Accounts, storage_stand_in: StorageStandIn
) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    await _refresh(auth, tokens["refresh_token"])
    private_key = storage_stand_in.open_key(
        _claims(tokens)["grant"], kind="user", subject=account.id
    )
    async with auth.runtime.session_maker() as session:
        rows = [
            *(await session.execute(select(Account))).scalars(),
            *(await session.execute(select(RefreshToken))).scalars(),
        ]
    assert len(rows) == 3
    for row in rows:
        for column in row.__table__.columns:
            value = getattr(row, column.key)
            if isinstance(value, bytes | str):
                raw = value.encode() if isinstance(value, str) else value
                assert private_key not in raw, column.key
                assert tokens["refresh_token"].encode() not in raw, column.key


async def test_tokens_carry_no_grant_without_a_storage_key(
    make_auth_app: AppFactory, accounts: Accounts
) -> None:
    async with make_auth_app(storage_public_key=None) as harness:
        account = await accounts.active()
        response = await harness.client.post(
            "/auth/v1/login", json={"email": account.email, "password": account.password}
        )
        assert response.status_code == 200
        claims = jwt.get_unverified_claims(response.json()["access_token"])
        assert "grant" not in claims


async def test_access_token_of_the_service_itself_is_verified_locally(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    claims = await auth.runtime.verifier.verify(tokens["access_token"], audience="hds-account")
    assert claims.sub == account.id
    with pytest.raises(Unauthorized):
        await auth.runtime.verifier.verify(tokens["access_token"], audience="hds-dlx")


async def _refresh(auth: AuthApp, refresh_token: str) -> httpx.Response:
    body = {"refresh_token": refresh_token}
    response: httpx.Response = await auth.client.post("/auth/v1/refresh", json=body)
    return response


def _claims(tokens: dict[str, str]) -> dict[str, str]:
    claims: dict[str, str] = jwt.get_unverified_claims(tokens["access_token"])
    return claims


async def test_login_upgrades_the_password_hash_to_new_argon2_costs(
    make_auth_app: AppFactory, accounts: Accounts
) -> None:
    account = await accounts.active()  # hashed with the suite's test cost (1 MiB)
    async with make_auth_app(argon2_memory_kib=2048) as stronger:
        for _ in range(2):  # the second login verifies the upgraded hash
            response = await stronger.client.post(
                "/auth/v1/login", json={"email": account.email, "password": account.password}
            )
            assert response.status_code == 200
        async with stronger.runtime.session_maker() as session:
            stored = await session.get(Account, uuid.UUID(account.id))
        assert stored is not None
        assert "$m=2048," in stored.password_hash
        # The key slot keeps the cost it was made with until the password changes.
        assert stored.password_key_kdf == "argon2id$t=1,m=1024,p=1"


async def test_concurrent_use_of_one_refresh_token_ends_the_session(
    auth: AuthApp, accounts: Accounts
) -> None:
    account = await accounts.active()
    tokens = await accounts.login(account)
    first, second = await asyncio.gather(
        _refresh(auth, tokens["refresh_token"]), _refresh(auth, tokens["refresh_token"])
    )
    assert sorted([first.status_code, second.status_code]) == [200, 401]
    winner = first if first.status_code == 200 else second
    # The copy was detected, so even the token the winner received is revoked.
    assert (await _refresh(auth, winner.json()["refresh_token"])).status_code == 401
