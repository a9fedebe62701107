"""What every client of a neighbour shares: an unreachable neighbour is its ``*-unavailable``
502, logged once with the cause."""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
import structlog

from hds_dlx.errors import NeighbourUnavailable

__all__ = ["NeighbourClient"]

log = structlog.get_logger("hds.dlx.upstream")


class NeighbourClient:
    unavailable: ClassVar[type[NeighbourUnavailable]] = NeighbourUnavailable

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def _send(self, method: str, path: str, *, what: str, **options: Any) -> httpx.Response:
        """The neighbour's answer, or :attr:`unavailable` (``what`` it could not do) when
        it could not be reached."""
        try:
            return await self._client.request(method, path, **options)
        except httpx.HTTPError as exc:
            log.warning(
                f"{self.unavailable.service}_unreachable", error=f"{type(exc).__name__}: {exc}"
            )
            raise self.unavailable(what) from None
