"""The catch-all route: everything the gateway does not serve itself is proxied."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

import hds_common.routing  # noqa: F401  (registers the anytext path convertor)
from hds_gateway.deps import runtime_of
from hds_gateway.edge import service as edge
from hds_gateway.routing.table import resolve

__all__ = ["PROXY_METHODS", "router"]

PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

router = APIRouter()


async def proxy(request: Request) -> Response:
    """Route by prefix, limit, verify the token where the route is not public, stream."""
    runtime = runtime_of(request)
    route = resolve(request.method, request.scope["path"])
    origin = edge.origin(runtime, request)
    await edge.limit_address(runtime, route.rate_class, origin.address)
    if not route.public:
        claims = await edge.authenticate(runtime, request, audience=route.audience)
        await edge.limit_subject(runtime, route.rate_class, claims.sub)
    settings = runtime.settings
    return await edge.forward(
        runtime,
        request,
        origin,
        upstream=route.upstream,
        body_limit=settings.max_ingest_body_bytes if route.ingest else settings.max_body_bytes,
    )


# A plain Starlette route: the hot path needs none of FastAPI's parameter machinery.
router.add_route("/{path:anytext}", proxy, methods=PROXY_METHODS, include_in_schema=False)
