"""``/openapi.json``: every service's OpenAPI merged under its prefix, plus the gateway's
own paths."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hds_gateway.deps import RuntimeDep

__all__ = ["router"]

router = APIRouter()


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request, runtime: RuntimeDep) -> JSONResponse:
    return JSONResponse(await runtime.openapi.document(request.app.openapi()))
