"""Portal links: ``/c/{code}`` and ``/?code=``, the URL in the QR code."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from hds_common.errors import problem_responses
from hds_gateway.deps import RuntimeDep
from hds_gateway.edge import service as edge
from hds_gateway.errors import (
    MissingCode,
    RateLimited,
    UpstreamFailed,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from hds_gateway.routing.table import RateClass
from hds_gateway.runtime import Runtime

__all__ = ["DLX_HEADER", "router"]

# A client sending this header (any value) wants the DLX API behind a portal link.
DLX_HEADER = "X-DICOM-LINK-EXCHANGE"

router = APIRouter(tags=["portal"])

_PORTAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": f"With `{DLX_HEADER}`: the DLX `token/{{code}}` answer (TFA questions)."},
    302: {"description": "Without it: a redirect to the single-page app, keeping the code."},
}
# Too many portal requests from one address; the DLX service unreachable or silent.
_PORTAL_PROBLEMS = (RateLimited, UpstreamUnreachable, UpstreamFailed, UpstreamTimeout)


@router.get(
    "/c/{code}",
    summary="Portal link (the URL in the QR code)",
    status_code=302,
    response_class=Response,
    responses=_PORTAL_RESPONSES | problem_responses(*_PORTAL_PROBLEMS),
)
async def portal_link(code: str, request: Request, runtime: RuntimeDep) -> Response:
    spa = f"{runtime.settings.spa_url}/c/{quote(code, safe='')}"
    return await _portal(request, runtime, code=code, spa_location=spa)


@router.get(
    "/",
    summary="Portal link with the code as a query parameter",
    status_code=302,
    response_class=Response,
    responses=_PORTAL_RESPONSES | problem_responses(MissingCode, *_PORTAL_PROBLEMS),
)
async def portal_root(
    request: Request,
    runtime: RuntimeDep,
    code: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    spa = runtime.settings.spa_url + (f"/?code={quote(code, safe='')}" if code else "/")
    return await _portal(request, runtime, code=code, spa_location=spa)


async def _portal(
    request: Request, runtime: Runtime, *, code: str | None, spa_location: str
) -> Response:
    origin = edge.origin(runtime, request)
    await edge.limit_address(runtime, RateClass.AUTH, origin.address)
    if DLX_HEADER in request.headers:
        if not code:
            raise MissingCode("the portal link carries no access code")
        # The same answer as /dlx/v1/token/{code}, produced by the DLX service itself.
        return await edge.forward(
            runtime,
            request,
            origin,
            upstream="dlx",
            raw_path=f"/dlx/v1/token/{quote(code, safe='')}",
            query="",
            body_limit=runtime.settings.max_body_bytes,
        )
    # The code is in the URL; keep it out of Referer headers and caches.
    return RedirectResponse(
        spa_location,
        status_code=302,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
