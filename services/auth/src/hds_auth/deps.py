"""Request dependencies: the runtime built by the lifespan, the caller's verified token,
its login session, the caller's account, the administrator check and the client address.
The request session is ``hds_common.db.SessionDep``; the calling service of an
``/internal`` route is ``hds_common.deps.CallingServiceDep``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials
from jose import jwt

from hds_auth.account import repository as accounts
from hds_auth.errors import AdminOnly
from hds_auth.models import Account
from hds_auth.runtime import Runtime
from hds_common.db import SessionDep
from hds_common.deps import AccountClaimsDep, account_token, runtime_dependency
from hds_common.errors import InvalidToken, MissingToken, ProblemError
from hds_common.tokens import TokenClaims

__all__ = [
    "TOKEN_PROBLEMS",
    "AdminDep",
    "ClaimsDep",
    "ClientAddressDep",
    "CurrentAccountDep",
    "RuntimeDep",
    "SessionIdDep",
    "no_store",
    "require_admin",
]


RuntimeDep = Annotated[Runtime, Depends(runtime_dependency(Runtime))]

# This service checks its own tokens against its own key set (the runtime's verifier),
# without an HTTP call to its JWKS.
ClaimsDep = AccountClaimsDep

# What the routes behind an account token may answer for the token itself.
TOKEN_PROBLEMS: tuple[type[ProblemError], ...] = (MissingToken, InvalidToken)


async def get_session_id(
    claims: ClaimsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(account_token)],
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
        raise InvalidToken("token subject is not an account") from None
    account = await accounts.get_account(session, account_id)
    if account is None or account.disabled:
        raise InvalidToken("the account of this token no longer exists")
    return account


CurrentAccountDep = Annotated[Account, Depends(get_current_account)]


def require_admin(claims: ClaimsDep) -> TokenClaims:
    if not claims.has_role("admin"):
        raise AdminOnly()
    return claims


AdminDep = Annotated[TokenClaims, Depends(require_admin)]


def get_client_address(request: Request) -> str | None:
    # Behind the gateway this is the client address the gateway vouches for
    # (hds_common.forwarded_client).
    return request.client.host if request.client else None


ClientAddressDep = Annotated[str | None, Depends(get_client_address)]


# Token and secret answers must not be cached anywhere (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def no_store(response: Response) -> None:
    """For ``dependencies=[Depends(no_store)]``: the answer carries ``NO_STORE`` (an
    error answer is built anew and does not need it)."""
    response.headers.update(NO_STORE)
