"""Dependencies of the routes: runtime, caller identity, client address. The calling
service of an ``/internal`` route is ``hds_common.deps.CallingServiceDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from hds_codes.errors import InstitutionOnly
from hds_codes.runtime import Runtime
from hds_common.deps import AccountClaimsDep, runtime_dependency
from hds_common.errors import InvalidToken, MissingToken
from hds_common.tokens import TokenClaims

__all__ = [
    "ACCOUNT_PROBLEMS",
    "INSTITUTION_PROBLEMS",
    "AccountDep",
    "ClientAddressDep",
    "InstitutionDep",
    "RuntimeDep",
]

# What the dependencies below answer, for the routes' ``problem_responses``.
ACCOUNT_PROBLEMS = (MissingToken, InvalidToken)
INSTITUTION_PROBLEMS = (*ACCOUNT_PROBLEMS, InstitutionOnly)


RuntimeDep = Annotated[Runtime, Depends(runtime_dependency(Runtime))]
AccountDep = AccountClaimsDep


async def current_institution(claims: AccountDep) -> TokenClaims:
    if not claims.has_role("institution"):
        raise InstitutionOnly("only institutions manage access codes")
    return claims


InstitutionDep = Annotated[TokenClaims, Depends(current_institution)]


def client_address(request: Request) -> str:
    # uvicorn runs with proxy headers from the gateway, so this is the end client.
    return request.client.host if request.client else "unknown"


ClientAddressDep = Annotated[str, Depends(client_address)]
