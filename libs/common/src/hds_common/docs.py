"""Interactive API documentation (Swagger UI at ``/docs``, ReDoc at ``/redoc``) whose
scripts, styles and icon come from the suite itself, never from a CDN: the docs work on a
machine without internet and leak no visit to a third party.

The assets are the packaged copies of the ``fastapi-offline`` distribution, served at
``/docs/assets/`` with a long cache lifetime (their names carry no version, so the
lifetime is one day, not forever).
"""

from __future__ import annotations

from importlib.resources import files

from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.routing import APIRouter

from hds_common.errors import NotFound

__all__ = ["DOCS_ASSETS_PATH", "docs_router"]

DOCS_ASSETS_PATH = "/docs/assets"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
_CACHE = {"Cache-Control": "public, max-age=86400"}


def _asset_path(name: str) -> str:
    return str(files("fastapi_offline").joinpath("static", name))


def docs_router(*, openapi_url: str, title: str) -> APIRouter:
    """``/docs``, ``/redoc`` and their assets, for an app created with ``docs_url`` and
    ``redoc_url`` set to None."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
        )

    @router.get("/redoc")
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=title,
            redoc_js_url=f"{DOCS_ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
            # No web fonts from elsewhere; the browser's own fonts do.
            with_google_fonts=False,
        )

    @router.get(DOCS_ASSETS_PATH + "/{name}")
    async def asset(name: str) -> FileResponse:
        media_type = _ASSETS.get(name)
        if media_type is None:  # only the known files, never a path below the folder
            raise NotFound("no such documentation asset")
        return FileResponse(_asset_path(name), media_type=media_type, headers=_CACHE)

    return router
