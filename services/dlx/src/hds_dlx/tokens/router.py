"""``api_info``, ``token/{value}`` and ``tokentfa/{value}`` under ``/dlx/v1``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

import hds_common.routing  # noqa: F401  (registers the anytext path convertor)
from hds_common.errors import problem_responses
from hds_dlx.config import API_PREFIX
from hds_dlx.deps import RuntimeDep
from hds_dlx.errors import CodeExpired, TfaFailed
from hds_dlx.tokens import service
from hds_dlx.tokens.schemas import ApiInfo, TfaAnswers, TfaQuestions

__all__ = ["TAG", "JwtResponse", "answers_router", "router"]

TAG = "DICOM Link Exchange (DIN/TS 19455)"

_CODE_VALUE = Path(
    description="Token value which identifies the download package, e.g. an alpha "
    "numerical code like ABC-S1Z-98A."
)


# The contract's own 200 of tokentfa: the JWT as text.
_JWT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Response with a valid JWT.",
        "content": {"application/jwt": {"schema": {"type": "string"}}},
    }
}


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
                raise TfaFailed("The answers could not be read as tfaAnswers JSON.") from None

        return route


router = APIRouter(prefix=API_PREFIX, tags=[TAG])
answers_router = APIRouter(prefix=API_PREFIX, tags=[TAG], route_class=AnswersRoute)


@router.get(
    "/api_info",
    response_model=ApiInfo,
    response_model_exclude_none=True,
    summary="API version and base path",
    description="Provides information on version and implemented capabilities of the API.",
    responses={200: {"description": "A JSON string representing information about the API."}},
)
async def get_api_info(runtime: RuntimeDep) -> ApiInfo:
    return service.settings_api_info(runtime.settings)


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
    value: Annotated[str, _CODE_VALUE],
    response: Response,
    runtime: RuntimeDep,
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
    return service.tfa_questions(service.settings_api_info(runtime.settings))


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
    responses=_JWT | problem_responses(TfaFailed, CodeExpired),
)
async def post_tokentfa(
    value: Annotated[str, _CODE_VALUE],
    answers: TfaAnswers,
    request: Request,
    runtime: RuntimeDep,
) -> Response:
    token = await service.issue_token(
        runtime.codes,
        runtime.auth,
        code=value,
        answers=answers,
        client=request.client.host if request.client else "unknown",
        ttl_seconds=runtime.settings.token_ttl_seconds,
    )
    return JwtResponse(token, headers={"Cache-Control": "no-store"})
