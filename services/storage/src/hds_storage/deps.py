"""The request dependencies of the storage service.

Account routes verify the account token (JWKS of the identity service) and open the
token's user grant with the storage service's private key: the grant names a key session
of this service and carries its secret, which unwraps the account's X25519 private key
held there, which opens the account's key slots (:mod:`hds_storage.keyring`). Internal
routes take the service token; where they need a package key the caller passes a package
grant (a package key session's grant) in ``X-HDS-Grant``. An ended session opens nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path

from hds_common.db import SessionDep
from hds_common.deps import AccountClaimsDep, CallingServiceDep, runtime_dependency
from hds_common.errors import InvalidToken, MissingToken
from hds_storage.downloads.service import PackageDownloads
from hds_storage.errors import (
    GrantInvalid,
    GrantRequired,
    IntegrityFailure,
    NoKeySlot,
    RoleRequired,
    SessionEnded,
)
from hds_storage.holdings.service import HoldingsService
from hds_storage.keyring import AccountPrincipal, KeyHolder, open_user_key
from hds_storage.packages.service import PackageService
from hds_storage.runtime import Runtime
from hds_storage.schemas import ID_MAX_LENGTH, ID_PATTERN

__all__ = [
    "GRANT_HEADER",
    "INSTITUTION_PROBLEMS",
    "KEY_HOLDER_PROBLEMS",
    "PRINCIPAL_PROBLEMS",
    "CallingServiceDep",
    "ClaimsDep",
    "DownloadsDep",
    "GrantDep",
    "HoldingsDep",
    "InstitutionDep",
    "KeyHolderDep",
    "PackagesDep",
    "PathId",
    "PrincipalDep",
    "RuntimeDep",
    "SessionDep",
]

GRANT_HEADER = "X-HDS-Grant"

# The id of a package, item, object or account in a route's path.
PathId = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]

# A package grant (internal routes) or the publishing institution's user grant (key export).
GrantDep = Annotated[str | None, Header(alias=GRANT_HEADER)]


RuntimeDep = Annotated[Runtime, Depends(runtime_dependency(Runtime))]
ClaimsDep = AccountClaimsDep


async def account_principal(claims: ClaimsDep) -> AccountPrincipal:
    return AccountPrincipal(account_id=claims.sub, roles=tuple(claims.roles), grant=claims.grant)


PrincipalDep = Annotated[AccountPrincipal, Depends(account_principal)]

# What the account dependencies may answer before a route runs (its routes document them).
PRINCIPAL_PROBLEMS = (MissingToken, InvalidToken)
_USER_GRANT_PROBLEMS = (*PRINCIPAL_PROBLEMS, GrantRequired, GrantInvalid, SessionEnded)
KEY_HOLDER_PROBLEMS = (*_USER_GRANT_PROBLEMS, NoKeySlot, IntegrityFailure)
INSTITUTION_PROBLEMS = (*_USER_GRANT_PROBLEMS, RoleRequired)


async def key_holder(principal: PrincipalDep, runtime: RuntimeDep) -> KeyHolder:
    key = await open_user_key(runtime, principal.grant, account_id=principal.account_id)
    return KeyHolder(principal.account_id, principal.roles, key)


KeyHolderDep = Annotated[KeyHolder, Depends(key_holder)]


async def institution(holder: KeyHolderDep) -> KeyHolder:
    if "institution" not in holder.roles:
        raise RoleRequired("only institutions publish packages")
    return holder


InstitutionDep = Annotated[KeyHolder, Depends(institution)]


# -- a feature's service on the request session (one transaction per request) ----------


def package_downloads(
    _: CallingServiceDep, runtime: RuntimeDep, session: SessionDep, grant: GrantDep = None
) -> PackageDownloads:
    """Downloads for a calling service (DLX), through the package grant it sent."""
    return PackageDownloads(runtime, session, grant)


DownloadsDep = Annotated[PackageDownloads, Depends(package_downloads)]


def holdings_service(runtime: RuntimeDep, session: SessionDep) -> HoldingsService:
    return HoldingsService(runtime, session)


HoldingsDep = Annotated[HoldingsService, Depends(holdings_service)]


def package_service(runtime: RuntimeDep, session: SessionDep) -> PackageService:
    return PackageService(runtime, session)


PackagesDep = Annotated[PackageService, Depends(package_service)]
