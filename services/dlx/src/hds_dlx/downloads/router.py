"""``list``, ``download/{id}`` and ``downloadall`` under ``/dlx/v1``.

Their documented answers are the contract's (tests/dlx/api/test_dlx_openapi.py): the binary
200s and the 503 ``comebackLater`` JSON are the standard's own and written out here; the
400, 401 and 404 answers are the suite's problem+json (``problem_responses``). The 416 for
a range beyond the end and the 502 of an unreachable storage are answered but not listed,
as the contract's list of status codes is exact.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

import hds_common.routing  # noqa: F401  (registers the anytext path convertor)
from hds_common.errors import InvalidToken, MissingToken, problem_responses
from hds_dlx.config import API_PREFIX
from hds_dlx.deps import DlxSessionDep, RuntimeDep
from hds_dlx.downloads import service
from hds_dlx.downloads.schemas import ComebackLaterResponse, DataItems
from hds_dlx.errors import DlxSessionInvalid, PackageEmpty, UnknownDataItem
from hds_dlx.tokens.router import TAG

__all__ = ["router"]

# Headers of a download that travel from the client to storage unchanged.
CONDITIONAL_REQUEST_HEADERS = ("Range", "If-Range")

_BINARY = {"schema": {"type": "string", "format": "binary"}}
# The DLX standard's own 503 answer (hds_dlx.errors.ComeBackLater).
_COMEBACK_LATER: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Server is busy. Try again later (status code 503).",
        "model": ComebackLaterResponse,
    }
}
_INVALID_CREDENTIALS = problem_responses(MissingToken, InvalidToken, DlxSessionInvalid)

router = APIRouter(prefix=API_PREFIX, tags=[TAG])


def _conditions(request: Request) -> dict[str, str]:
    return {
        name: value
        for name in CONDITIONAL_REQUEST_HEADERS
        if (value := request.headers.get(name)) is not None
    }


@router.get(
    "/list",
    response_model=DataItems,
    response_model_exclude_none=True,
    summary="The studies and reports of the code",
    description=(
        "Returns a list of the metadata of all available medical data items. Dates are "
        "ISO 8601 (YYYY-MM-DD). 503 (comebackLater) while the package is still being "
        "delivered by the institution."
    ),
    responses={200: {"description": "A list of medical data items."}}
    | _INVALID_CREDENTIALS
    | _COMEBACK_LATER,
)
async def get_list(session: DlxSessionDep, runtime: RuntimeDep, response: Response) -> DataItems:
    items = await runtime.storage.items(session)
    response.headers["Cache-Control"] = "no-store"
    return DataItems(
        data_item=[mapped for item in items if (mapped := service.data_item(item)) is not None]
    )


@router.get(
    "/download/{id:anytext}",
    response_class=Response,
    summary="One study (IHE PDI ZIP) or report (PDF)",
    description=(
        "A study as its IHE PDI ZIP (application/zip), a report as application/pdf. "
        "Range and If-Range are honoured (206 with Content-Range); ETag, Content-Length and "
        "Accept-Ranges allow resuming. 400 for an id the code does not unlock."
    ),
    responses={
        200: {
            "description": "Returns the referenced data item as binary stream with the "
            "specified mimeType: application/zip (a DICOM study in IHE PDI layout) or "
            "application/pdf.",
            "content": {"application/octet-stream": _BINARY},
        },
    }
    | problem_responses(UnknownDataItem)
    | _INVALID_CREDENTIALS
    | _COMEBACK_LATER,
)
async def download(
    id: Annotated[str, Path(description="ID, which identifies the data item.")],
    request: Request,
    session: DlxSessionDep,
    runtime: RuntimeDep,
) -> Response:
    return await service.download_item(
        runtime.storage,
        runtime.slots,
        session,
        item_id=id,
        conditions=_conditions(request),
        busy_retry_after=runtime.settings.busy_retry_after_seconds,
    )


@router.get(
    "/downloadall",
    response_class=Response,
    summary="Everything of the code in one IHE PDI ZIP",
    description=(
        "All studies and reports in one ZIP with one DICOMDIR. Range and If-Range are "
        "honoured (206 with Content-Range). 404 (package-empty, an extension of the "
        "contract) when the code's studies and reports are no longer stored."
    ),
    responses={
        200: {
            "description": "Returns all data items in a ZIP file stream (IHE PDI).",
            "content": {"application/zip": _BINARY},
        },
    }
    | _INVALID_CREDENTIALS
    | problem_responses(PackageEmpty)
    | _COMEBACK_LATER,
)
async def download_all(request: Request, session: DlxSessionDep, runtime: RuntimeDep) -> Response:
    return await service.download_all(
        runtime.storage,
        runtime.slots,
        session,
        conditions=_conditions(request),
        busy_retry_after=runtime.settings.busy_retry_after_seconds,
    )
