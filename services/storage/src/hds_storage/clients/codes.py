"""What storage asks the access code service: until when a package's codes are valid.

``GET {codes}/internal/v1/packages/{id}/validity`` is the authoritative answer the
retention sweep needs before it retires a package
(:mod:`hds_storage.maintenance.retention`). No answer means no retirement: the sweep keeps
the package and asks again next time.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["CodesClient", "CodesUnavailable"]


class CodesUnavailable(Exception):
    """The codes service gave no usable answer."""


class _Validity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    valid_until: dt.datetime | None


class CodesClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def codes_valid_until(self, package_id: str) -> dt.datetime | None:
        """When the package's last code stops (stopped) being valid; None without codes."""
        try:
            response = await self._client.get(
                f"/internal/v1/packages/{quote(package_id, safe='')}/validity"
            )
        except httpx.HTTPError as exc:
            raise CodesUnavailable(type(exc).__name__) from None
        if response.status_code != 200:
            raise CodesUnavailable(f"status {response.status_code}")
        try:
            valid_until = _Validity.model_validate_json(response.content).valid_until
        except ValidationError:
            raise CodesUnavailable("malformed answer") from None
        if valid_until is not None and valid_until.tzinfo is None:
            valid_until = valid_until.replace(tzinfo=dt.UTC)
        return valid_until
