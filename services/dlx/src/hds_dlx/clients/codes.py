"""codes: ``POST /internal/v1/validate``, the access code and the birth date checked."""

from __future__ import annotations

import datetime as dt

import structlog

from hds_dlx.clients.neighbour import NeighbourClient
from hds_dlx.clients.schemas import CodeValidation
from hds_dlx.errors import CodeExpired, CodesUnavailable, TfaFailed

__all__ = ["CodesClient"]

log = structlog.get_logger("hds.dlx.upstream")

_WHAT = "check the access code"


class CodesClient(NeighbourClient):
    unavailable = CodesUnavailable

    async def validate(self, *, code: str, birth_date: dt.date, client: str) -> CodeValidation:
        """The code's package and grant, or 401 (wrong, unknown, locked) / 403 (expired)."""
        response = await self._send(
            "POST",
            "/internal/v1/validate",
            what=_WHAT,
            json={"code": code, "birth_date": birth_date.isoformat(), "client": client},
        )
        if response.status_code == 200:
            return self._parsed(CodeValidation.model_validate_json, response, _WHAT)
        if response.status_code == 403:
            raise CodeExpired()
        if 400 <= response.status_code < 500:
            # "All other errors should result in error code 401" (DIN/TS 19455).
            raise TfaFailed()
        log.warning("codes_failed", status=response.status_code)
        raise CodesUnavailable(_WHAT)
