"""What every client of a neighbour shares: an unreachable neighbour is its ``*-unavailable``
502, logged once with the cause."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import httpx
import structlog
from pydantic import ValidationError

from hds_dlx.errors import NeighbourUnavailable

__all__ = ["NeighbourClient"]

log = structlog.get_logger("hds.dlx.upstream")

_Body = TypeVar("_Body")


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

    def _parsed(
        self, parse: Callable[[bytes], _Body], response: httpx.Response, what: str
    ) -> _Body:
        """``parse`` of the answer's body; a body that does not parse is the neighbour
        failing to do ``what`` it was asked."""
        try:
            return parse(response.content)
        except ValidationError:
            raise self.unavailable(what) from None
