"""Which package keys a caller can reach.

An account reaches its packages through its key slots, opened with the private key its
user grant unlocks (:class:`KeyRing`); an internal route reaches one package through a
package grant (:class:`GrantKeys`). Both are opened once per request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from hds_common.crypto import IntegrityError
from hds_storage.errors import GrantKeyRefused, GrantMismatch, NoKeySlot, integrity_failure
from hds_storage.key_sessions.repository import KeySessionRepository
from hds_storage.key_sessions.service import open_session
from hds_storage.keys import MetaCipher, open_slot
from hds_storage.models import Package
from hds_storage.packages.repository import PackageRepository
from hds_storage.runtime import Runtime
from hds_storage.transactions import workflow_transaction

__all__ = [
    "AccountPrincipal",
    "GrantKeys",
    "KeyHolder",
    "KeyRing",
    "open_user_key",
    "package_key_from_grant",
]


@dataclass(frozen=True)
class AccountPrincipal:
    account_id: str
    roles: tuple[str, ...]
    grant: str | None = field(repr=False)


@dataclass(frozen=True)
class KeyHolder:
    """An account whose grant was opened: it can open its key slots."""

    account_id: str
    roles: tuple[str, ...]
    private_key: bytes = field(repr=False)


async def open_user_key(runtime: Runtime, grant: str | None, *, account_id: str) -> bytes:
    """The account's private key from the live key session its grant names."""
    # A short transaction of its own: upload routes hold no request session while they
    # stream.
    async with workflow_transaction(runtime.session_maker) as session:
        return await open_session(
            KeySessionRepository(session),
            runtime.grant_key,
            grant,
            kind="user",
            subject=account_id,
        )


class KeyRing:
    """Package keys an account reaches through its key slots, opened once per request."""

    def __init__(self, session: AsyncSession, holder: KeyHolder) -> None:
        self._packages = PackageRepository(session)
        self._holder = holder
        self._keys: dict[str, bytes] = {}
        self._ciphers: dict[str, MetaCipher] = {}

    async def load(self, package_ids: set[str] | list[str]) -> None:
        missing = [p for p in set(package_ids) if p not in self._keys]
        slots = await self._packages.slots_of_account(self._holder.account_id, missing)
        for package_id in missing:
            slot = slots.get(package_id)
            if slot is None:
                raise NoKeySlot("no key slot for this package")
            try:
                key = open_slot(self._holder.private_key, package_id, slot.sealed_key)
            except IntegrityError:
                raise integrity_failure(
                    "key slot cannot be opened with this account's key", package_id=package_id
                ) from None
            self._keys[package_id] = key
            self._ciphers[package_id] = MetaCipher(key, package_id)

    async def key(self, package_id: str) -> bytes:
        await self.load([package_id])
        return self._keys[package_id]

    def cipher(self, package_id: str) -> MetaCipher:
        return self._ciphers[package_id]


class GrantKeys:
    """The one package key of a package grant (internal routes)."""

    def __init__(self, package_id: str, key: bytes) -> None:
        self.package_id = package_id
        self._key = key
        self._cipher = MetaCipher(key, package_id)

    async def load(self, package_ids: set[str] | list[str]) -> None:
        if set(package_ids) - {self.package_id}:
            raise GrantMismatch("the grant covers one package only")

    async def key(self, package_id: str) -> bytes:
        await self.load([package_id])
        return self._key

    def cipher(self, package_id: str) -> MetaCipher:
        if package_id != self.package_id:
            raise GrantMismatch("the grant covers one package only")
        return self._cipher


async def package_key_from_grant(runtime: Runtime, package: Package, token: str | None) -> bytes:
    """Open a package grant's key session and prove its key is this package's key."""
    async with workflow_transaction(runtime.session_maker) as session:
        key = await open_session(
            KeySessionRepository(session),
            runtime.grant_key,
            token,
            kind="package",
            subject=package.id,
        )
    if not MetaCipher(key, package.id).check(package.id, package.key_check):
        raise GrantKeyRefused("the grant's key does not open this package")
    return key
