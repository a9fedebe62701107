"""Dependencies of the routes: runtime, caller identity, calling service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hds_codes.runtime import Runtime
from hds_common.errors import Forbidden, Unauthorized
from hds_common.service_auth import SERVICE_TOKEN_HEADER, verify_service_token
from hds_common.tokens import ACCOUNT_AUDIENCE, TokenClaims

__all__ = [
    "ClientAddress",
    "CurrentAccount",
    "CurrentInstitution",
    "InternalService",
    "RuntimeDep",
]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(
    auto_error=False, description="Account token (JWT) issued by the identity service"
)


async def current_account(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
    if credentials is None:
        raise Unauthorized("bearer token required", slug="missing-token")
    return await runtime.verifier.verify(credentials.credentials, audience=ACCOUNT_AUDIENCE)


CurrentAccount = Annotated[TokenClaims, Depends(current_account)]


async def current_institution(claims: CurrentAccount) -> TokenClaims:
    if not claims.has_role("institution"):
        raise Forbidden("only institutions manage access codes", slug="institution-only")
    return claims


CurrentInstitution = Annotated[TokenClaims, Depends(current_institution)]


def internal_service(
    runtime: RuntimeDep,
    token: Annotated[str | None, Header(alias=SERVICE_TOKEN_HEADER)] = None,
) -> str:
    """The calling service's name; ``/internal`` routes are for the suite's services only."""
    return verify_service_token(runtime.settings.suite.internal_secret.get_secret_value(), token)


InternalService = Annotated[str, Depends(internal_service)]


def client_address(request: Request) -> str:
    # uvicorn runs with proxy headers from the gateway, so this is the end client.
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]
