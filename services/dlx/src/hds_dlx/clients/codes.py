"""codes: ``POST /internal/v1/validate``, the access code and the birth date checked."""

from __future__ import annotations

import datetime as dt

import httpx
import structlog
from pydantic import ValidationError

from hds_dlx.clients.schemas import CodeValidation
from hds_dlx.errors import CodeExpired, CodesUnavailable, TfaFailed

__all__ = ["CodesClient"]

log = structlog.get_logger("hds.dlx.upstream")

_WHAT = "check the access code"


class CodesClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def validate(self, *, code: str, birth_date: dt.date, client: str) -> CodeValidation:
        """The code's package and grant, or 401 (wrong, unknown, locked) / 403 (expired)."""
        try:
            response = await self._client.post(
                "/internal/v1/validate",
                json={"code": code, "birth_date": birth_date.isoformat(), "client": client},
            )
        except httpx.HTTPError as exc:
            log.warning("codes_unreachable", error=f"{type(exc).__name__}: {exc}")
            raise CodesUnavailable(_WHAT) from None
        if response.status_code == 200:
            try:
                return CodeValidation.model_validate_json(response.content)
            except ValidationError:
                raise CodesUnavailable(_WHAT) from None
        if response.status_code == 403:
            raise CodeExpired()
        if 400 <= response.status_code < 500:
            # "All other errors should result in error code 401" (DIN/TS 19455).
            raise TfaFailed()
        log.warning("codes_failed", status=response.status_code)
        raise CodesUnavailable(_WHAT)
