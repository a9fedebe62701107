"""The DLX service's answers: the two the DLX standard defines itself, and its
problem+json errors.

* 503 ``comebackLater``: ``{"timeOutInSeconds": n}`` as ``application/json`` with
  ``Retry-After`` — while the package is still being ingested or while every download slot
  of this process is busy (:class:`ComeBackLater`).
* 416 for a ``Range`` beyond the end of a download (:class:`RangeNotSatisfiable`), with
  ``Content-Range: bytes */<size>`` passed on from storage.

Everything else (401 with ``WWW-Authenticate: Bearer``, 400, 403, 404, 502) is a
:class:`hds_common.errors.ProblemError` subclass below.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hds_common.errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    NotFound,
    ProblemError,
    Unauthorized,
)

__all__ = [
    "AuthUnavailable",
    "CodeExpired",
    "CodesUnavailable",
    "ComeBackLater",
    "DlxSessionInvalid",
    "NeighbourUnavailable",
    "PackageEmpty",
    "RangeNotSatisfiable",
    "StorageUnavailable",
    "TfaFailed",
    "UnknownDataItem",
    "comeback_later_response",
    "install_handlers",
]


class ComeBackLater(Exception):
    """Answer 503 ``comebackLater``: the download may work in ``seconds`` seconds."""

    def __init__(self, seconds: int, *, reason: str) -> None:
        super().__init__(f"come back in {seconds} s: {reason}")
        self.seconds = max(0, seconds)
        self.reason = reason


class RangeNotSatisfiable(
    ProblemError, slug="range-not-satisfiable", title="Range not satisfiable"
):
    status = 416


class PackageEmpty(NotFound, slug="package-empty", title="Nothing to download"):
    """``downloadall`` of a code whose package holds nothing (any more). Not in the DLX
    contract, which knows no such state; a 404 that says so beats a 400 about an id the
    request does not have."""

    def __init__(self) -> None:
        super().__init__(
            "The studies and reports of this access code are no longer stored "
            "(deleted after the publishing institution's retention period)."
        )


class TfaFailed(Unauthorized, slug="tfa-failed"):
    """One answer for unknown codes, wrong answers and locked codes alike."""

    def __init__(self, detail: str = "Authentication failed.", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class DlxSessionInvalid(Unauthorized, slug="dlx-session-invalid"):
    """The token was valid, but its package is gone or no longer opens with its grant."""

    def __init__(self) -> None:
        super().__init__("The access is no longer valid; use /token and /tokentfa again.")


class CodeExpired(Forbidden, slug="code-expired"):
    def __init__(self) -> None:
        super().__init__("The access code has expired; ask the institution to reactivate it.")


class UnknownDataItem(BadRequest, slug="unknown-data-item"):
    """The same answer whether the id does not exist or belongs to another code."""

    def __init__(self) -> None:
        super().__init__("Study or report for the given ID is unknown.")


class NeighbourUnavailable(BadGateway):
    """A neighbouring service could not be reached or answered what it must not."""

    service: ClassVar[str] = "neighbour"

    def __init__(self, what: str) -> None:
        super().__init__(f"The {self.service} service could not {what}.")


class CodesUnavailable(NeighbourUnavailable, slug="codes-unavailable"):
    service = "codes"


class AuthUnavailable(NeighbourUnavailable, slug="auth-unavailable"):
    service = "auth"


class StorageUnavailable(NeighbourUnavailable, slug="storage-unavailable"):
    service = "storage"


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
