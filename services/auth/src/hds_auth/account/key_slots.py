"""The two slots an account's private key is kept in: wrapped under its password and
under its recovery code (Argon2id key-encryption keys, :mod:`hds_auth.userkeys`).
Registration fills both, a reset rewraps both, a password change the password slot,
and login opens the password slot."""

from __future__ import annotations

import asyncio

from hds_auth.models import Account
from hds_auth.passwords.hashing import PasswordHashing
from hds_auth.userkeys import (
    KeySlot,
    WrongSecret,
    normalise_recovery_code,
    unwrap_slot,
    wrap_slot,
)

__all__ = [
    "PASSWORD_SLOT",
    "RECOVERY_SLOT",
    "open_password_slot",
    "password_slot",
    "recovery_slot",
    "set_credentials",
    "set_password_slot",
]

PASSWORD_SLOT = "password"
RECOVERY_SLOT = "recovery"


def password_slot(account: Account) -> KeySlot:
    return KeySlot(
        account.password_key_salt, account.password_key_kdf, account.password_wrapped_key
    )


def recovery_slot(account: Account) -> KeySlot:
    return KeySlot(
        account.recovery_key_salt, account.recovery_key_kdf, account.recovery_wrapped_key
    )


def set_password_slot(account: Account, slot: KeySlot) -> None:
    account.password_key_salt = slot.salt
    account.password_key_kdf = slot.kdf
    account.password_wrapped_key = slot.wrapped


def _set_recovery_slot(account: Account, slot: KeySlot) -> None:
    account.recovery_key_salt = slot.salt
    account.recovery_key_kdf = slot.kdf
    account.recovery_wrapped_key = slot.wrapped


async def set_credentials(
    account: Account,
    private_key: bytes,
    *,
    password: str,
    recovery_code: str,
    hashing: PasswordHashing,
) -> None:
    """Wrap ``private_key`` under ``password`` and ``recovery_code`` and hash the
    password: three Argon2id computations at ``hashing``'s cost, run in worker threads
    side by side."""
    params = hashing.params
    password_key, recovery_key, password_hash = await asyncio.gather(
        wrap_slot(
            private_key, password, purpose=PASSWORD_SLOT, account_id=account.id, params=params
        ),
        wrap_slot(
            private_key,
            normalise_recovery_code(recovery_code),
            purpose=RECOVERY_SLOT,
            account_id=account.id,
            params=params,
        ),
        hashing.hash(password),
    )
    set_password_slot(account, password_key)
    _set_recovery_slot(account, recovery_key)
    account.password_hash = password_hash


async def open_password_slot(account: Account, password: str) -> bytes:
    """The private key under a password already verified against the account's hash;
    the two disagreeing is a broken row, not a wrong password."""
    try:
        return await unwrap_slot(
            password_slot(account), password, purpose=PASSWORD_SLOT, account_id=account.id
        )
    except WrongSecret:
        raise RuntimeError("password hash and password key slot disagree") from None
