"""Signing keys: generated on first start, RFC 7638 key ids, JWKS, rotation that keeps the
previous key published until its tokens have expired, replicas sharing the directory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt
from joserfc.jwk import ECKey

from hds_auth.config import Settings
from hds_auth.signing.keyring import RETIREMENT_GRACE_SECONDS, Keyring, keyring_from
from tests.auth.support import Accounts, AppFactory, bearer


async def test_first_start_generates_a_private_key_file(
    make_auth_app: AppFactory, tmp_path: Path
) -> None:
    key_dir = tmp_path / "keys"
    async with make_auth_app(signing_key_dir=key_dir) as harness:
        [pem] = list(key_dir.glob("*.pem"))
        assert pem.stat().st_mode & 0o777 == 0o600
        jwks = await harness.jwks()
        [key] = jwks["keys"]
        assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
        # RFC 7638 thumbprint, computed by an independent JOSE implementation.
        public = {name: key[name] for name in ("kty", "crv", "x", "y")}
        assert key["kid"] == ECKey.import_key(public).thumbprint()
        assert "d" not in key
        both = await harness.client.get("/auth/v1/jwks.json")
        assert both.json() == jwks
        assert "max-age" in both.headers["cache-control"]
    # A restart keeps the key.
    async with make_auth_app(signing_key_dir=key_dir) as harness:
        assert await harness.jwks() == jwks


async def test_rotation_keeps_old_tokens_valid(
    make_auth_app: AppFactory, accounts: Accounts, tmp_path: Path
) -> None:
    async with make_auth_app(signing_key_dir=tmp_path / "keys") as harness:
        admin = await accounts.privileged(role="admin")
        patient = await accounts.active()
        login = await harness.client.post(
            "/auth/v1/login", json={"email": admin.email, "password": admin.password}
        )
        old_tokens = login.json()
        old_kid = jwt.get_unverified_header(old_tokens["access_token"])["kid"]

        rotated = await harness.client.post(
            "/auth/v1/admin/signing-keys/rotate", headers=bearer(old_tokens)
        )
        assert rotated.status_code == 200, rotated.text
        new_kid = rotated.json()["kid"]
        assert new_kid != old_kid
        assert set(rotated.json()["published_kids"]) == {old_kid, new_kid}

        jwks = await harness.jwks()
        assert {key["kid"] for key in jwks["keys"]} == {old_kid, new_kid}
        verifier = await harness.verifier()
        assert (await verifier.verify(old_tokens["access_token"], audience="hds-account")).sub
        assert (
            await harness.client.get("/auth/v1/me", headers=bearer(old_tokens))
        ).status_code == 200

        fresh = await harness.client.post(
            "/auth/v1/login", json={"email": patient.email, "password": patient.password}
        )
        assert jwt.get_unverified_header(fresh.json()["access_token"])["kid"] == new_kid
        assert (await verifier.verify(fresh.json()["access_token"], audience="hds-account")).sub


def test_superseded_key_is_published_until_its_tokens_have_expired(tmp_path: Path) -> None:
    keyring = Keyring(tmp_path, token_lifetime=900, rescan_seconds=0)
    old = keyring.ensure_key()
    new = keyring.rotate()
    assert keyring.current().kid == new.kid
    keep_for = dt.timedelta(seconds=900 + RETIREMENT_GRACE_SECONDS)
    just_before = new.created_at + keep_for - dt.timedelta(seconds=1)
    just_after = new.created_at + keep_for + dt.timedelta(seconds=1)
    assert [key.kid for key in keyring.published(just_before)] == [old.kid, new.kid]
    assert [key.kid for key in keyring.published(just_after)] == [new.kid]
    assert [key["kid"] for key in keyring.jwks(just_after)["keys"]] == [new.kid]

    # The next rotation after that deletes the retired key's file.
    newest = keyring.rotate(now=just_after)
    assert not old.path.exists()
    assert new.path.exists()
    assert {key.kid for key in keyring.keys()} == {new.kid, newest.kid}


def test_foreign_files_are_ignored_and_hand_placed_keys_are_used(tmp_path: Path) -> None:
    (tmp_path / "README.pem").write_text("not a key")
    keyring = Keyring(tmp_path, token_lifetime=900, rescan_seconds=0)
    generated = keyring.ensure_key()
    placed = ec.generate_private_key(ec.SECP256R1())
    hand_placed = tmp_path / "operator-key.pem"
    hand_placed.write_bytes(
        placed.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keyring.reload()
    # Placed after the generated one (by modification time), so it signs now.
    assert keyring.current().path == hand_placed
    assert {key.kid for key in keyring.published()} == {generated.kid, keyring.current().kid}


async def test_replicas_pick_up_a_rotation(
    make_auth_app: AppFactory, accounts: Accounts, tmp_path: Path
) -> None:
    key_dir = tmp_path / "shared-keys"
    async with (
        make_auth_app(signing_key_dir=key_dir, signing_key_rescan_seconds=0) as replica_a,
        make_auth_app(signing_key_dir=key_dir, signing_key_rescan_seconds=0) as replica_b,
    ):
        assert await replica_a.jwks() == await replica_b.jwks()
        new_key = replica_a.runtime.keyring.rotate()
        patient = await accounts.active()
        login = await replica_b.client.post(
            "/auth/v1/login", json={"email": patient.email, "password": patient.password}
        )
        tokens = login.json()
        assert jwt.get_unverified_header(tokens["access_token"])["kid"] == new_key.kid
        me = await replica_a.client.get("/auth/v1/me", headers=bearer(tokens))
        assert me.status_code == 200


def test_keys_outlive_the_longest_token_they_sign(tmp_path: Path) -> None:
    settings = Settings(
        signing_key_dir=tmp_path, access_token_ttl_seconds=900, dlx_token_max_ttl_seconds=1800
    )
    assert keyring_from(settings).token_lifetime == 1800
