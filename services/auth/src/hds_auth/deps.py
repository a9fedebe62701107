"""Request dependencies: the runtime built by the lifespan, the caller's verified token,
the caller's account, and role checks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jose import jwt
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hds_auth import repository
from hds_auth.config import Settings
from hds_auth.db import SessionDep
from hds_auth.issuer import TokenIssuer
from hds_auth.key_sessions import KeySessions
from hds_auth.mail import Mailer
from hds_auth.models import Account
from hds_auth.passwords import PasswordHashing
from hds_auth.signing import Keyring
from hds_auth.throttle import Throttle
from hds_common.errors import Forbidden, Unauthorized
from hds_common.tokens import ACCOUNT_AUDIENCE, TokenClaims, TokenVerifier

__all__ = [
    "ClaimsDep",
    "ClientAddressDep",
    "CurrentAccountDep",
    "Runtime",
    "RuntimeDep",
    "SessionIdDep",
    "get_claims",
    "require_admin",
]


@dataclass
class Runtime:
    """Everything the lifespan builds once and the routes share."""

    settings: Settings
    engine: AsyncEngine
    session_maker: async_sessionmaker[AsyncSession]
    hashing: PasswordHashing
    mailer: Mailer
    keyring: Keyring
    issuer: TokenIssuer
    verifier: TokenVerifier
    throttle: Throttle
    storage: httpx.AsyncClient
    # The storage service's key sessions; None without HDS_GRANT_PUBLIC_KEY (then tokens
    # carry no grant and unlock nothing).
    key_sessions: KeySessions | None


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="Account token (JWT) from login")


async def get_claims(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
    """The verified account token; this service checks its own tokens against its own
    key set, without an HTTP call to its JWKS."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("bearer token required", slug="missing-token")
    return await runtime.verifier.verify(credentials.credentials, audience=ACCOUNT_AUDIENCE)


ClaimsDep = Annotated[TokenClaims, Depends(get_claims)]


async def get_session_id(
    claims: ClaimsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    """The ``sid`` claim (the login session) of the verified token; not part of the
    suite-wide :class:`TokenClaims` because only this service uses it."""
    del claims  # verified first
    assert credentials is not None
    sid = jwt.get_unverified_claims(credentials.credentials).get("sid")
    return sid if isinstance(sid, str) else None


SessionIdDep = Annotated[str | None, Depends(get_session_id)]


async def get_current_account(session: SessionDep, claims: ClaimsDep) -> Account:
    try:
        account_id = uuid.UUID(claims.sub)
    except ValueError:
        raise Unauthorized("token subject is not an account", slug="invalid-token") from None
    account = await repository.get_account(session, account_id)
    if account is None or account.disabled:
        raise Unauthorized("the account of this token no longer exists", slug="invalid-token")
    return account


CurrentAccountDep = Annotated[Account, Depends(get_current_account)]


def require_admin(claims: ClaimsDep) -> TokenClaims:
    if not claims.has_role("admin"):
        raise Forbidden("This route is for administrators.", slug="admin-only")
    return claims


def get_client_address(request: Request) -> str | None:
    # Behind the gateway uvicorn's proxy-header support fills this from X-Forwarded-For.
    return request.client.host if request.client else None


ClientAddressDep = Annotated[str | None, Depends(get_client_address)]
