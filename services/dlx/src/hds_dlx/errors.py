"""The answers the DLX standard defines itself, next to the suite's problem+json errors.

* 503 ``comebackLater``: ``{"timeOutInSeconds": n}`` as ``application/json`` with
  ``Retry-After`` — while the package is still being ingested or while every download slot
  of this process is busy (:class:`ComeBackLater`).
* 416 for a ``Range`` beyond the end of a download (:class:`RangeNotSatisfiable`), with
  ``Content-Range: bytes */<size>`` passed on from storage.

Everything else (401 with ``WWW-Authenticate: Bearer``, 400, 403, 502) is a
:class:`hds_common.errors.ProblemError`.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hds_common.errors import NotFound, ProblemError

__all__ = [
    "ComeBackLater",
    "PackageEmpty",
    "RangeNotSatisfiable",
    "comeback_later_response",
    "install_handlers",
]


class ComeBackLater(Exception):
    """Answer 503 ``comebackLater``: the download may work in ``seconds`` seconds."""

    def __init__(self, seconds: int, *, reason: str) -> None:
        super().__init__(f"come back in {seconds} s: {reason}")
        self.seconds = max(0, seconds)
        self.reason = reason


class RangeNotSatisfiable(ProblemError):
    status = 416
    slug = "range-not-satisfiable"
    title = "Range not satisfiable"


class PackageEmpty(NotFound):
    """``downloadall`` of a code whose package holds nothing (any more). Not in the DLX
    contract, which knows no such state; a 404 that says so beats a 400 about an id the
    request does not have."""

    slug = "package-empty"
    title = "Nothing to download"

    def __init__(self) -> None:
        super().__init__(
            "The studies and reports of this access code are no longer stored "
            "(deleted after the publishing institution's retention period)."
        )


def comeback_later_response(seconds: int) -> JSONResponse:
    return JSONResponse(
        {"timeOutInSeconds": seconds},
        status_code=503,
        headers={"Retry-After": str(seconds), "Cache-Control": "no-store"},
    )


def install_handlers(app: FastAPI) -> None:
    async def on_come_back_later(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ComeBackLater)
        return comeback_later_response(exc.seconds)

    app.add_exception_handler(ComeBackLater, on_come_back_later)
