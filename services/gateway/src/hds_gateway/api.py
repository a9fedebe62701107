"""The gateway's routes: portal links, the merged OpenAPI document, and the proxy that
serves everything else."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

import hds_common.routing  # noqa: F401  (registers the anytext path convertor)
from hds_common.errors import BadRequest
from hds_gateway.edge import Gateway, GatewayDep
from hds_gateway.routing import RateClass, resolve

__all__ = ["DLX_HEADER", "portal_router", "proxy_router"]

# A client sending this header (any value) wants the DLX API behind a portal link.
DLX_HEADER = "X-DICOM-LINK-EXCHANGE"

PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

portal_router = APIRouter(tags=["portal"])
proxy_router = APIRouter()

_PORTAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": f"With `{DLX_HEADER}`: the DLX `token/{{code}}` answer (TFA questions)."},
    302: {"description": "Without it: a redirect to the single-page app, keeping the code."},
}


@portal_router.get(
    "/c/{code}",
    summary="Portal link (the URL in the QR code)",
    status_code=302,
    response_class=Response,
    responses=_PORTAL_RESPONSES,
)
async def portal_link(code: str, request: Request, gateway: GatewayDep) -> Response:
    spa = f"{gateway.settings.spa_url}/c/{quote(code, safe='')}"
    return await _portal(request, gateway, code=code, spa_location=spa)


@portal_router.get(
    "/",
    summary="Portal link with the code as a query parameter",
    status_code=302,
    response_class=Response,
    responses=_PORTAL_RESPONSES,
)
async def portal_root(
    request: Request,
    gateway: GatewayDep,
    code: Annotated[str | None, Query(max_length=128)] = None,
) -> Response:
    spa = gateway.settings.spa_url + (f"/?code={quote(code, safe='')}" if code else "/")
    return await _portal(request, gateway, code=code, spa_location=spa)


async def _portal(
    request: Request, gateway: Gateway, *, code: str | None, spa_location: str
) -> Response:
    origin = gateway.origin(request)
    await gateway.limit_address(RateClass.AUTH, origin.address)
    if DLX_HEADER in request.headers:
        if not code:
            raise BadRequest("the portal link carries no access code", slug="missing-code")
        # The same answer as /dlx/v1/token/{code}, produced by the DLX service itself.
        return await gateway.forward(
            request,
            origin,
            upstream="dlx",
            raw_path=f"/dlx/v1/token/{quote(code, safe='')}",
            query="",
            body_limit=gateway.settings.max_body_bytes,
        )
    # The code is in the URL; keep it out of Referer headers and caches.
    return RedirectResponse(
        spa_location,
        status_code=302,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@portal_router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, gateway: GatewayDep) -> JSONResponse:
    """Every service's OpenAPI merged under its prefix, plus the gateway's own paths."""
    return JSONResponse(await gateway.openapi.document(request.app.openapi()))


async def proxy(request: Request) -> Response:
    """Route by prefix, limit, verify the token where the route is not public, stream."""
    gateway: Gateway = request.app.state.gateway
    route = resolve(request.method, request.scope["path"])
    origin = gateway.origin(request)
    await gateway.limit_address(route.rate_class, origin.address)
    if not route.public:
        claims = await gateway.authenticate(request, audience=route.audience)
        await gateway.limit_subject(route.rate_class, claims.sub)
    settings = gateway.settings
    return await gateway.forward(
        request,
        origin,
        upstream=route.upstream,
        body_limit=settings.max_ingest_body_bytes if route.ingest else settings.max_body_bytes,
    )


# A plain Starlette route: the hot path needs none of FastAPI's parameter machinery.
proxy_router.add_route("/{path:anytext}", proxy, methods=PROXY_METHODS, include_in_schema=False)
