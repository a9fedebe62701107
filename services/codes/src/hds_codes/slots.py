"""The code key slot: the package key wrapped under Argon2id(code + birth date, salt).

Argon2id is deliberately slow and memory-hard, so it runs in worker threads (argon2-cffi
releases the GIL), at most ``kdf_concurrency`` at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from hds_common.crypto import Argon2Params, derive_kek, unwrap_key, wrap_key
from hds_common.crypto.errors import IntegrityError

__all__ = ["KeyDeriver", "slot_aad", "slot_secret"]


def slot_secret(normalised_code: str, birth_date: dt.date) -> bytes:
    """The Argon2id input: the code in normal form, then the birth date as YYYYMMDD."""
    return f"{normalised_code}{birth_date:%Y%m%d}".encode("ascii")


def slot_aad(code_id: str, package_id: str) -> bytes:
    """Binds a wrapped key to its code row, so it cannot be moved to another row."""
    return f"hds/codes/slot/v1\x00{code_id}\x00{package_id}".encode()


class KeyDeriver:
    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)

    async def kek(self, secret: bytes, salt: bytes, params: Argon2Params) -> bytes:
        async with self._slots:
            return await asyncio.to_thread(derive_kek, secret, salt, params)

    async def wrap(
        self, secret: bytes, salt: bytes, params: Argon2Params, key: bytes, aad: bytes
    ) -> bytes:
        return wrap_key(await self.kek(secret, salt, params), key, aad)

    async def unwrap(
        self, secret: bytes, salt: bytes, params: Argon2Params, wrapped: bytes, aad: bytes
    ) -> bytes | None:
        """The key, or ``None`` when the secret is wrong."""
        kek = await self.kek(secret, salt, params)
        try:
            return unwrap_key(kek, wrapped, aad)
        except IntegrityError:
            return None
