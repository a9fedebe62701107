"""Internal routes under ``/internal/v1`` (service token; package grant in ``X-HDS-Grant``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse

from hds_storage.access import GRANT_HEADER, PathId, ServiceDep, StateDep
from hds_storage.db import SessionDep
from hds_storage.packages import PackageService, import_slot
from hds_storage.repository import StorageRepository
from hds_storage.retention import record_codes_validity
from hds_storage.schemas import (
    AccountUsage,
    DataItem,
    PackageKeyOut,
    PackageStatus,
    RetentionUpdate,
    SlotImport,
    SlotImported,
)

router = APIRouter(prefix="/internal/v1", tags=["internal"])

GrantHeader = Annotated[str | None, Header(alias=GRANT_HEADER)]
_BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get("/packages/{package_id}/key", summary="Package key for its publishing institution")
async def package_key(
    package_id: PathId,
    _: ServiceDep,
    state: StateDep,
    session: SessionDep,
    grant: GrantHeader = None,
) -> PackageKeyOut:
    return await PackageService(state, StorageRepository(session)).export_key(package_id, grant)


@router.post(
    "/packages/{package_id}/slots",
    summary="Import a package into an account (key slot + holdings, within quota)",
    responses={507: {"description": "Does not fit the account's quota (manual mode)"}},
)
async def import_package(
    package_id: PathId, body: SlotImport, _: ServiceDep, state: StateDep
) -> SlotImported:
    return await import_slot(state, package_id, body)


@router.put(
    "/packages/{package_id}/retention",
    status_code=204,
    summary="Until when the package's codes are valid (the retention sweep's hint)",
    responses={404: {"description": "package-not-found"}, 409: {"description": "package-retired"}},
)
async def package_retention(
    package_id: PathId, body: RetentionUpdate, _: ServiceDep, state: StateDep
) -> Response:
    await record_codes_validity(state.session_maker, package_id, body.codes_valid_until)
    return Response(status_code=204)


@router.get("/packages/{package_id}/status", summary="Whether a package is complete")
async def package_status(
    package_id: PathId, _: ServiceDep, state: StateDep, session: SessionDep
) -> PackageStatus:
    return await PackageService(state, StorageRepository(session)).status(package_id)


@router.get(
    "/packages/{package_id}/items",
    summary="The package's items as DLX dataItems",
    responses={409: {"description": "package-incomplete (with retry_after)"}},
)
async def package_items(
    package_id: PathId,
    _: ServiceDep,
    state: StateDep,
    session: SessionDep,
    grant: GrantHeader = None,
) -> list[DataItem]:
    return await PackageService(state, StorageRepository(session)).items(package_id, grant)


@router.get(
    "/packages/{package_id}/archive",
    summary="Items of the package as IHE PDI ZIP (Range, If-Range)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": _BINARY}}, 206: {}, 409: {}, 416: {}},
)
async def package_archive(
    package_id: PathId,
    request: Request,
    _: ServiceDep,
    state: StateDep,
    session: SessionDep,
    grant: GrantHeader = None,
    item: Annotated[list[str] | None, Query(description="Item ids; all when none")] = None,
) -> StreamingResponse:
    return await PackageService(state, StorageRepository(session)).archive(
        package_id, grant, item or [], request.headers
    )


@router.get(
    "/packages/{package_id}/documents/{document_id}",
    summary="One PDF document of the package (Range, If-Range)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/pdf": _BINARY}}, 206: {}, 409: {}, 416: {}},
)
async def package_document(
    package_id: PathId,
    document_id: PathId,
    request: Request,
    _: ServiceDep,
    state: StateDep,
    session: SessionDep,
    grant: GrantHeader = None,
) -> StreamingResponse:
    return await PackageService(state, StorageRepository(session)).document(
        package_id, document_id, grant, request.headers
    )


@router.get("/usage/{account_id}", summary="Used bytes and quota of an account")
async def account_usage(
    account_id: PathId, _: ServiceDep, state: StateDep, session: SessionDep
) -> AccountUsage:
    account = await state.identity.account(account_id)
    return AccountUsage(
        used_bytes=await StorageRepository(session).used_bytes(account_id),
        quota_bytes=account.quota_bytes,
    )
