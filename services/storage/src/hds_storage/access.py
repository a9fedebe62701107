"""Who is calling and which package keys they can reach.

Account routes verify the account token themselves (JWKS of the identity service) and
open the token's user grant with the storage service's private key: the grant names a
key session of this service and carries its secret, which unwraps the account's X25519
private key held there, which opens the account's key slots. Internal routes take the
service token; where they need a package key the caller passes a package grant (a
package key session's grant) in ``X-HDS-Grant``. An ended session opens nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import structlog
from fastapi import Depends, Header, Path, Request

from hds_common.crypto import IntegrityError
from hds_common.errors import Forbidden, NotFound
from hds_common.service_auth import SERVICE_TOKEN_HEADER, verify_service_token
from hds_common.tokens import ACCOUNT_AUDIENCE, bearer_token
from hds_storage.errors import IntegrityFailure
from hds_storage.key_sessions.repository import KeySessionRepository
from hds_storage.key_sessions.service import open_session
from hds_storage.keys import MetaCipher, open_slot
from hds_storage.models import Package
from hds_storage.repository import StorageRepository
from hds_storage.schemas import ID_MAX_LENGTH, ID_PATTERN
from hds_storage.state import StorageState

__all__ = [
    "GRANT_HEADER",
    "AccountPrincipal",
    "InstitutionDep",
    "KeyHolder",
    "KeyHolderDep",
    "KeyRing",
    "PathId",
    "PrincipalDep",
    "ServiceDep",
    "StateDep",
    "get_state",
    "open_user_key",
    "package_key_from_grant",
]

log = structlog.get_logger("hds.storage.access")

GRANT_HEADER = "X-HDS-Grant"

# The id of a package, item, object or account in a route's path.
PathId = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]


def get_state(request: Request) -> StorageState:
    state: StorageState = request.app.state.storage
    return state


StateDep = Annotated[StorageState, Depends(get_state)]


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


async def account_principal(
    state: StateDep,
    authorization: Annotated[str | None, Header()] = None,
) -> AccountPrincipal:
    claims = await state.verifier.verify(bearer_token(authorization), audience=ACCOUNT_AUDIENCE)
    return AccountPrincipal(account_id=claims.sub, roles=tuple(claims.roles), grant=claims.grant)


PrincipalDep = Annotated[AccountPrincipal, Depends(account_principal)]


async def open_user_key(state: StorageState, grant: str | None, *, account_id: str) -> bytes:
    """The account's private key from the live key session its grant names."""
    # A short session of its own: upload routes hold no request session while they stream.
    async with state.session_maker() as session:
        return await open_session(
            KeySessionRepository(session), state.grant_key, grant, kind="user", subject=account_id
        )


async def key_holder(principal: PrincipalDep, state: StateDep) -> KeyHolder:
    key = await open_user_key(state, principal.grant, account_id=principal.account_id)
    return KeyHolder(principal.account_id, principal.roles, key)


KeyHolderDep = Annotated[KeyHolder, Depends(key_holder)]


async def institution(holder: KeyHolderDep) -> KeyHolder:
    if "institution" not in holder.roles:
        raise Forbidden("only institutions publish packages", slug="role-required")
    return holder


InstitutionDep = Annotated[KeyHolder, Depends(institution)]


async def calling_service(
    state: StateDep,
    token: Annotated[str | None, Header(alias=SERVICE_TOKEN_HEADER)] = None,
) -> str:
    return verify_service_token(state.settings.suite.internal_secret.get_secret_value(), token)


ServiceDep = Annotated[str, Depends(calling_service)]


def integrity_failure(what: str, **context: str) -> IntegrityFailure:
    """Log (for the operator) and answer 500 ``integrity-error``."""
    log.error("integrity_error", what=what, **context)
    return IntegrityFailure(what)


class KeyRing:
    """Package keys an account reaches through its key slots, opened once per request."""

    def __init__(self, repo: StorageRepository, holder: KeyHolder) -> None:
        self._repo = repo
        self._holder = holder
        self._keys: dict[str, bytes] = {}
        self._ciphers: dict[str, MetaCipher] = {}

    async def load(self, package_ids: set[str] | list[str]) -> None:
        missing = [p for p in set(package_ids) if p not in self._keys]
        slots = await self._repo.slots_of_account(self._holder.account_id, missing)
        for package_id in missing:
            slot = slots.get(package_id)
            if slot is None:
                raise Forbidden("no key slot for this package", slug="no-key-slot")
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
            raise Forbidden("the grant covers one package only", slug="grant-mismatch")

    async def key(self, package_id: str) -> bytes:
        await self.load([package_id])
        return self._key

    def cipher(self, package_id: str) -> MetaCipher:
        if package_id != self.package_id:
            raise Forbidden("the grant covers one package only", slug="grant-mismatch")
        return self._cipher


async def package_key_from_grant(state: StorageState, package: Package, token: str | None) -> bytes:
    """Open a package grant's key session and prove its key is this package's key."""
    async with state.session_maker() as session:
        key = await open_session(
            KeySessionRepository(session),
            state.grant_key,
            token,
            kind="package",
            subject=package.id,
        )
    if not MetaCipher(key, package.id).check(package.id, package.key_check):
        raise Forbidden("the grant's key does not open this package", slug="grant-invalid")
    return key


async def load_package(repo: StorageRepository, package_id: str) -> Package:
    package = await repo.package(package_id)
    if package is None:
        raise NotFound("no such package", slug="package-not-found")
    return package
