"""Password rules and Argon2id password hashes.

Hashing runs in a worker thread: an Argon2id call takes tens of milliseconds of CPU and
must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hds_common.crypto import Argon2Params
from hds_common.errors import UnprocessableContent

__all__ = ["MAX_PASSWORD_LENGTH", "PasswordHashing", "check_password_policy", "common_passwords"]

# Bounds the work one request can cause; far beyond any password a person types.
MAX_PASSWORD_LENGTH = 1024


@cache
def common_passwords() -> frozenset[str]:
    """The built-in list of common passwords (lower-cased)."""
    text = (
        resources.files("hds_auth")
        .joinpath("data/common_passwords.txt")
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def check_password_policy(password: str, *, min_length: int, email: str | None = None) -> None:
    """Raise a 422 with a specific slug and a message a person understands."""
    if len(password) < min_length:
        raise UnprocessableContent(
            f"The password must be at least {min_length} characters long.",
            slug="password-too-short",
            title="Password too short",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UnprocessableContent(
            f"The password must be at most {MAX_PASSWORD_LENGTH} characters long.",
            slug="password-too-long",
            title="Password too long",
        )
    lowered = password.strip().lower()
    if lowered in common_passwords():
        raise UnprocessableContent(
            "This password is on the list of commonly used passwords; choose another one.",
            slug="password-too-common",
            title="Password too common",
        )
    if email and lowered in {email.lower(), email.lower().partition("@")[0]}:
        raise UnprocessableContent(
            "The password must not be the e-mail address.",
            slug="password-too-common",
            title="Password too common",
        )


class PasswordHashing:
    """Argon2id hashes (argon2-cffi's encoded format, parameters included)."""

    def __init__(self, params: Argon2Params) -> None:
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_cost_kib,
            parallelism=params.parallelism,
        )
        # Verified against for unknown e-mail addresses, so that they take as long as a
        # wrong password for a real account.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; ``None`` verifies against the dummy hash
        (always false, same cost)."""
        if password_hash is None:
            await asyncio.to_thread(self._verify, self._dummy_hash, password)
            return False
        return await asyncio.to_thread(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
