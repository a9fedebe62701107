"""The six DLX operations under ``/dlx/v1`` (DIN/TS 19455), HTTP only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

import hds_common.routing  # noqa: F401  (registers the anytext path convertor)
from hds_dlx import service
from hds_dlx.config import Settings
from hds_dlx.deps import DlxSessionDep, Neighbours, NeighboursDep, SettingsDep
from hds_dlx.errors import ComeBackLater
from hds_dlx.schemas import (
    ApiInfo,
    CodeValidation,
    ComebackLaterResponse,
    DataItems,
    StorageItem,
    TfaAnswers,
    TfaQuestions,
)
from hds_dlx.service import API_PREFIX
from hds_dlx.streaming import StreamedDownload
from hds_dlx.upstream import DlxSession, tfa_failed, unknown_data_item

__all__ = ["JwtResponse", "routers"]

TAG = "DICOM Link Exchange (DIN/TS 19455)"
# codes accepts at most 64 characters; longer values are wrong without asking it.
MAX_CODE_LENGTH = 64
# Headers of a download that travel between the client and storage unchanged.
CONDITIONAL_REQUEST_HEADERS = ("Range", "If-Range")
PASSED_RESPONSE_HEADERS = (
    "Content-Length",
    "Content-Range",
    "Content-Encoding",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
)

_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
_INVALID_CREDENTIALS: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Invalid credentials provided - use /token and /tokentfa before.",
        "content": _PROBLEM,
    }
}
_COMEBACK_LATER: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Server is busy. Try again later (status code 503).",
        "model": ComebackLaterResponse,
    }
}
_INVALID_DATA_ITEM: dict[int | str, dict[str, Any]] = {
    400: {"description": "Study or report for the given ID is unknown.", "content": _PROBLEM}
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


class JwtResponse(Response):
    media_type = "application/jwt"


class AnswersRoute(APIRoute):
    """``tokentfa`` answers 401 for any failure but an expired code (DIN/TS 19455: "All
    other errors should result in error code 401") — also for a body that is not JSON or
    not shaped like ``tfaAnswers``, which would otherwise be a 422, or not even text
    (FastAPI's 400 for a JSON body that is not UTF-8)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except (RequestValidationError, StarletteHTTPException) as exc:
                if isinstance(exc, StarletteHTTPException) and exc.status_code != 400:
                    raise
                raise tfa_failed("The answers could not be read as tfaAnswers JSON.") from None

        return route


router = APIRouter(prefix=API_PREFIX, tags=[TAG])
answers_router = APIRouter(prefix=API_PREFIX, tags=[TAG], route_class=AnswersRoute)
routers = (router, answers_router)


def _api_info(settings: Settings) -> ApiInfo:
    return service.api_info(
        base_path=service.api_base_path(
            public_base_url=settings.suite.public_base_url, override=settings.public_base_path
        ),
        vendor_information=settings.vendor_information,
    )


@router.get(
    "/api_info",
    response_model=ApiInfo,
    response_model_exclude_none=True,
    summary="API version and base path",
    description="Provides information on version and implemented capabilities of the API.",
    responses={200: {"description": "A JSON string representing information about the API."}},
)
async def get_api_info(settings: SettingsDep) -> ApiInfo:
    return _api_info(settings)


@router.get(
    "/token/{value:anytext}",
    response_model=TfaQuestions,
    response_model_exclude_none=True,
    summary="The questions to answer for an access code",
    description=(
        "Always 200 with the same question (the patient's birth date, questionId 1, in "
        "German and English), whether or not the code exists: the answer and its timing do "
        "not depend on the code, which is not even looked up. /tokentfa tells success."
    ),
    responses={200: {"description": "The TFA questions."}},
)
async def get_token(
    value: Annotated[
        str,
        Path(
            description="Token value which identifies the download package, e.g. an alpha "
            "numerical code like ABC-S1Z-98A."
        ),
    ],
    response: Response,
    settings: SettingsDep,
    x_dicom_link_exchange: Annotated[
        str | SkipJsonSchema[None],
        Header(
            alias="X-DICOM-LINK-EXCHANGE",
            description="Activates the DLX answer on portal links; the value is not evaluated.",
        ),
    ] = None,
) -> TfaQuestions:
    # Both parameters are part of the standard's interface; neither may change the answer.
    del value, x_dicom_link_exchange
    response.headers["Cache-Control"] = "no-store"
    return service.tfa_questions(_api_info(settings))


@answers_router.post(
    "/tokentfa/{value:anytext}",
    response_class=JwtResponse,
    summary="Answer the questions; get the JWT for list and downloads",
    description=(
        "200 with the JWT as application/jwt (short-lived, accepted only by the DLX "
        "routes). 401 for an unknown code, a wrong, missing or unreadable answer, or a code "
        "locked after repeated failures (indistinguishable); 403 only when the code has "
        "expired and the answers match."
    ),
    responses={
        200: {
            "description": "Response with a valid JWT.",
            "content": {"application/jwt": {"schema": {"type": "string"}}},
        },
        401: {
            "description": "Authentication failed. Token does not exist or additional factors "
            "do not match.",
            "content": _PROBLEM,
        },
        403: {
            "description": "Authentication failed. Token expired but additional factors match.",
            "content": _PROBLEM,
        },
    },
)
async def post_tokentfa(
    value: Annotated[
        str,
        Path(
            description="Token value which identifies the download package, e.g. an alpha "
            "numerical code like ABC-S1Z-98A."
        ),
    ],
    answers: TfaAnswers,
    request: Request,
    settings: SettingsDep,
    neighbours: NeighboursDep,
) -> Response:
    birth_date = service.birth_date_answer(answers)
    if birth_date is None:
        raise tfa_failed("Answer questionId 1 with the birth date as YYYYMMDD.")
    if not value.strip() or len(value) > MAX_CODE_LENGTH:
        raise tfa_failed()
    validation = await neighbours.codes.validate(
        code=value,
        birth_date=birth_date,
        client=request.client.host if request.client else "unknown",
    )
    token = await neighbours.auth.mint_dlx_token(
        validation, ttl_seconds=_token_ttl(settings, validation)
    )
    return JwtResponse(token, headers={"Cache-Control": "no-store"})


def _token_ttl(settings: Settings, validation: CodeValidation) -> int:
    """The configured lifetime, but never beyond the code's or its grant's expiry."""
    ttl = settings.token_ttl_seconds
    now = dt.datetime.now(dt.UTC)
    for expiry in (validation.expires_at, validation.code_expires_at):
        if expiry is not None:
            if expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=dt.UTC)
            ttl = min(ttl, int((expiry - now).total_seconds()))
    return max(1, ttl)


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
    responses={
        200: {"description": "A list of medical data items."},
        **_INVALID_CREDENTIALS,
        **_COMEBACK_LATER,
    },
)
async def get_list(
    session: DlxSessionDep, neighbours: NeighboursDep, response: Response
) -> DataItems:
    items = await neighbours.storage.items(session)
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
        **_INVALID_DATA_ITEM,
        **_INVALID_CREDENTIALS,
        **_COMEBACK_LATER,
    },
)
async def download(
    id: Annotated[str, Path(description="ID, which identifies the data item.")],
    request: Request,
    session: DlxSessionDep,
    neighbours: NeighboursDep,
    settings: SettingsDep,
) -> Response:
    items = await neighbours.storage.items(session)
    item = next(
        (entry for entry in items if entry.id == id and service.data_item(entry) is not None),
        None,
    )
    if item is None:
        raise unknown_data_item()
    return await _stream(request, neighbours, settings, session, item)


@router.get(
    "/downloadall",
    response_class=Response,
    summary="Everything of the code in one IHE PDI ZIP",
    description=(
        "All studies and reports in one ZIP with one DICOMDIR. Range and If-Range are "
        "honoured (206 with Content-Range)."
    ),
    responses={
        200: {
            "description": "Returns all data items in a ZIP file stream (IHE PDI).",
            "content": {"application/zip": _BINARY},
        },
        **_INVALID_CREDENTIALS,
        404: {
            "description": "The code's studies and reports are no longer stored "
            "(package-empty; an extension of the contract).",
            "content": _PROBLEM,
        },
        **_COMEBACK_LATER,
    },
)
async def download_all(
    request: Request,
    session: DlxSessionDep,
    neighbours: NeighboursDep,
    settings: SettingsDep,
) -> Response:
    await neighbours.storage.require_complete(session)
    return await _stream(request, neighbours, settings, session, None)


async def _stream(
    request: Request,
    neighbours: Neighbours,
    settings: Settings,
    session: DlxSession,
    item: StorageItem | None,
) -> Response:
    """Stream one item (or, for None, the whole package) from storage to the client,
    holding a download slot until the body is sent or the client is gone."""
    slots = neighbours.slots
    if not slots.try_acquire():
        raise ComeBackLater(settings.busy_retry_after_seconds, reason="download slots busy")
    try:
        conditions = {
            name: value
            for name in CONDITIONAL_REQUEST_HEADERS
            if (value := request.headers.get(name)) is not None
        }
        if item is None or item.kind == "study":
            upstream = await neighbours.storage.open_archive(
                session, item_id=item.id if item else None, conditions=conditions
            )
            media_type = service.STUDY_MIME_TYPE
        else:
            upstream = await neighbours.storage.open_document(
                session, item_id=item.id, conditions=conditions
            )
            media_type = item.mime_type or service.DOCUMENT_MIME_TYPE
    except BaseException:
        slots.release()
        raise
    headers = {
        name: value
        for name in PASSED_RESPONSE_HEADERS
        if (value := upstream.header(name)) is not None
    }
    headers["Content-Disposition"] = f'attachment; filename="{service.download_filename(item)}"'
    headers["Cache-Control"] = "private, no-store"
    return StreamedDownload(
        upstream,
        status_code=upstream.status_code,
        headers=headers,
        media_type=media_type,
        release=slots.release,
    )
