"""Small pieces: recovery codes, key-derivation labels, key slots, opaque tokens."""

from __future__ import annotations

import uuid

import pytest

from hds_auth.opaque_tokens import hash_secret, new_secret_token, parse_secret_token, secret_matches
from hds_auth.userkeys import (
    WrongSecret,
    format_kdf,
    generate_recovery_code,
    new_user_key,
    normalise_recovery_code,
    parse_kdf,
    unwrap_refresh_slot,
    unwrap_slot,
    wrap_refresh_slot,
    wrap_slot,
)
from hds_common.crypto import FAST_ARGON2


def test_recovery_codes_are_unambiguous_and_distinct() -> None:
    codes = {generate_recovery_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert len(code) == 29
        assert not set(code) & set("ILOU")


def test_recovery_code_normalisation_accepts_what_people_type() -> None:
    assert normalise_recovery_code(" abcde-fghjk\tmnpqr 0o1il ") == "ABCDEFGHJKMNPQR00111"


def test_kdf_labels_round_trip() -> None:
    assert parse_kdf(format_kdf(FAST_ARGON2)) == FAST_ARGON2
    with pytest.raises(ValueError, match="unknown key derivation"):
        parse_kdf("scrypt$n=1")


async def test_slots_open_only_with_their_secret_purpose_and_owner() -> None:
    private, _public = new_user_key()
    owner = uuid.uuid4()
    slot = await wrap_slot(
        private, "a long passphrase", purpose="password", account_id=owner, params=FAST_ARGON2
    )
    assert await unwrap_slot(slot, "a long passphrase", purpose="password", account_id=owner) == (
        private
    )
    for secret, purpose, account in (
        ("wrong passphrase", "password", owner),
        ("a long passphrase", "recovery", owner),
        ("a long passphrase", "password", uuid.uuid4()),
        ("", "password", owner),
    ):
        with pytest.raises(WrongSecret):
            await unwrap_slot(slot, secret, purpose=purpose, account_id=account)


def test_refresh_slot_needs_the_token_secret() -> None:
    private, _ = new_user_key()
    token_id = uuid.uuid4()
    _text, secret = new_secret_token(token_id)
    wrapped = wrap_refresh_slot(private, secret, token_id)
    assert unwrap_refresh_slot(wrapped, secret, token_id) == private
    with pytest.raises(WrongSecret):
        unwrap_refresh_slot(wrapped, bytes(32), token_id)
    with pytest.raises(WrongSecret):
        unwrap_refresh_slot(wrapped, secret, uuid.uuid4())


def test_opaque_tokens() -> None:
    token_id = uuid.uuid4()
    text, secret = new_secret_token(token_id)
    assert parse_secret_token(text) == (token_id, secret)
    assert secret_matches(hash_secret(secret), secret)
    assert not secret_matches(hash_secret(secret), bytes(32))
    for garbage in ("", "!!!", "QUFB", text + "A", text[:-2]):
        assert parse_secret_token(garbage) is None
