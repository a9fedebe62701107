"""Downloads of a complete package for DLX (``/internal/v1``, service token; the package
grant in ``X-HDS-Grant``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from hds_common.errors import ServiceTokenInvalid, problem_responses
from hds_storage.deps import (
    DownloadsDep,
    PathId,
)
from hds_storage.downloads.schemas import DataItem
from hds_storage.downloads.service import ITEM_KIND_HEADER
from hds_storage.errors import (
    BlobStoreUnavailable,
    GrantInvalid,
    GrantKeyRefused,
    GrantMismatch,
    GrantRequired,
    IntegrityFailure,
    ItemNotFound,
    PackageEmpty,
    PackageIncomplete,
    PackageNotFound,
    RangeNotSatisfiableProblem,
    SessionEnded,
)
from hds_storage.openapi import ranged_content

router = APIRouter(prefix="/internal/v1", tags=["internal"])


# What every grant route may answer before it looks at the items.
_GRANT_PROBLEMS = (
    ServiceTokenInvalid,
    PackageNotFound,
    PackageIncomplete,
    GrantRequired,
    GrantInvalid,
    SessionEnded,
    GrantMismatch,
    GrantKeyRefused,
    IntegrityFailure,
)
_STREAM_PROBLEMS = (*_GRANT_PROBLEMS, RangeNotSatisfiableProblem, BlobStoreUnavailable)


@router.get(
    "/packages/{package_id}/items",
    summary="The package's items as DLX dataItems",
    responses=problem_responses(*_GRANT_PROBLEMS),
)
async def package_items(package_id: PathId, service: DownloadsDep) -> list[DataItem]:
    return await service.items(package_id)


@router.get(
    "/packages/{package_id}/archive",
    summary="Items of the package as IHE PDI ZIP (Range, If-Range)",
    response_class=StreamingResponse,
    responses=ranged_content("application/zip")
    | problem_responses(*_STREAM_PROBLEMS, ItemNotFound, PackageEmpty),
)
async def package_archive(
    package_id: PathId,
    request: Request,
    service: DownloadsDep,
    item: Annotated[list[str] | None, Query(description="Item ids; all when none")] = None,
) -> StreamingResponse:
    return await service.archive(package_id, item or [], request.headers)


@router.get(
    "/packages/{package_id}/documents/{document_id}",
    summary="One PDF document of the package (Range, If-Range)",
    response_class=StreamingResponse,
    responses=ranged_content("application/pdf")
    | problem_responses(*_STREAM_PROBLEMS, ItemNotFound),
)
async def package_document(
    package_id: PathId, document_id: PathId, request: Request, service: DownloadsDep
) -> StreamingResponse:
    return await service.document(package_id, document_id, request.headers)


_KIND_HEADER: dict[str, Any] = {
    ITEM_KIND_HEADER: {
        "description": "study: the body is the study's IHE PDI ZIP; document: the document",
        "schema": {"type": "string", "enum": ["study", "document"]},
    }
}

_ITEM_CONTENT = ranged_content("application/zip", "application/pdf", headers=_KIND_HEADER)


@router.get(
    "/packages/{package_id}/items/{item_id}/content",
    summary="One item of the package, whichever kind it is (Range, If-Range): a study as "
    "its IHE PDI ZIP (as archive?item=), a document as itself (as documents/{id})",
    response_class=StreamingResponse,
    responses=_ITEM_CONTENT | problem_responses(*_STREAM_PROBLEMS, ItemNotFound),
)
async def package_item_content(
    package_id: PathId, item_id: PathId, request: Request, service: DownloadsDep
) -> StreamingResponse:
    return await service.item_content(package_id, item_id, request.headers)
