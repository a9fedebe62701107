"""Argon2id password hashes.

Hashing runs in a worker thread: an Argon2id call takes tens of milliseconds of CPU and
must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hds_common.crypto import Argon2Params

__all__ = ["PasswordHashing"]


class PasswordHashing:
    """Argon2id hashes (argon2-cffi's encoded format, parameters included)."""

    def __init__(self, params: Argon2Params) -> None:
        # The account's Argon2id cost: its hashes', and its key slots' beside them.
        self.params = params
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
