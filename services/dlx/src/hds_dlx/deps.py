"""Dependencies of the DLX routes: the runtime, and the DLX session of a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPBearer

from hds_common.deps import bearer_claims, runtime_dependency
from hds_common.errors import InvalidToken
from hds_common.tokens import DLX_AUDIENCE, TokenClaims
from hds_dlx.clients.storage import DlxSession
from hds_dlx.runtime import Runtime

__all__ = ["DlxSessionDep", "RuntimeDep", "bearer_scheme"]


RuntimeDep = Annotated[Runtime, Depends(runtime_dependency(Runtime))]

# Named as in the standard's securitySchemes so the published OpenAPI matches it.
bearer_scheme = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="The JWT answered by /tokentfa/{value}.",
    auto_error=False,
)

_verified_claims = bearer_claims(
    audience=DLX_AUDIENCE,
    scheme=bearer_scheme,
    missing="Use /token and /tokentfa to obtain a bearer token.",
)


async def _dlx_session(claims: Annotated[TokenClaims, Depends(_verified_claims)]) -> DlxSession:
    """The package a DLX token opens; 401 for anything but a valid token of audience
    ``hds-dlx`` (an account token, however valid, does not open DLX routes)."""
    if not claims.pkg or not claims.grant:
        raise InvalidToken("The token does not open a package.")
    return DlxSession(code_id=claims.sub, package_id=claims.pkg, grant=claims.grant)


DlxSessionDep = Annotated[DlxSession, Depends(_dlx_session)]
