"""auth: ``POST /internal/v1/dlx-tokens``, the JWT of a validated code."""

from __future__ import annotations

import structlog
from pydantic import ValidationError

from hds_dlx.clients.neighbour import NeighbourClient
from hds_dlx.clients.schemas import CodeValidation, MintedToken
from hds_dlx.errors import AuthUnavailable

__all__ = ["AuthClient"]

log = structlog.get_logger("hds.dlx.upstream")

_WHAT = "issue the token"


class AuthClient(NeighbourClient):
    unavailable = AuthUnavailable

    async def mint_dlx_token(self, validation: CodeValidation, *, ttl_seconds: int) -> str:
        response = await self._send(
            "POST",
            "/internal/v1/dlx-tokens",
            what=_WHAT,
            json={
                "package_id": validation.package_id,
                "code_id": validation.code_id,
                "grant": validation.grant,
                "key_session_id": validation.key_session_id,
                "ttl_seconds": ttl_seconds,
            },
        )
        if response.status_code in (200, 201):
            try:
                return MintedToken.model_validate_json(response.content).token
            except ValidationError:
                pass
        log.warning("auth_mint_failed", status=response.status_code)
        raise AuthUnavailable(_WHAT)
