"""Dependencies of the DLX routes: settings, the neighbours' clients, the DLX session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hds_common.errors import Unauthorized
from hds_common.tokens import DLX_AUDIENCE, TokenVerifier
from hds_dlx.config import Settings
from hds_dlx.streaming import DownloadSlots
from hds_dlx.upstream import AuthClient, CodesClient, DlxSession, StorageClient

__all__ = [
    "DlxSessionDep",
    "Neighbours",
    "NeighboursDep",
    "SettingsDep",
    "bearer_scheme",
]


@dataclass(frozen=True, slots=True)
class Neighbours:
    """Everything the lifespan builds once: clients, the token verifier, the slots."""

    codes: CodesClient
    auth: AuthClient
    storage: StorageClient
    verifier: TokenVerifier
    slots: DownloadSlots


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _neighbours(request: Request) -> Neighbours:
    neighbours: Neighbours = request.app.state.neighbours
    return neighbours


SettingsDep = Annotated[Settings, Depends(_settings)]
NeighboursDep = Annotated[Neighbours, Depends(_neighbours)]

# Named as in the standard's securitySchemes so the published OpenAPI matches it.
bearer_scheme = HTTPBearer(
    scheme_name="bearerAuth",
    bearerFormat="JWT",
    description="The JWT answered by /tokentfa/{value}.",
    auto_error=False,
)


async def _dlx_session(
    neighbours: NeighboursDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> DlxSession:
    """The package a DLX token opens; 401 for anything but a valid token of audience
    ``hds-dlx`` (an account token, however valid, does not open DLX routes)."""
    if credentials is None:
        raise Unauthorized(
            "Use /token and /tokentfa to obtain a bearer token.", slug="missing-token"
        )
    claims = await neighbours.verifier.verify(credentials.credentials, audience=DLX_AUDIENCE)
    if not claims.pkg or not claims.grant:
        raise Unauthorized("The token does not open a package.", slug="invalid-token")
    return DlxSession(code_id=claims.sub, package_id=claims.pkg, grant=claims.grant)


DlxSessionDep = Annotated[DlxSession, Depends(_dlx_session)]
