"""Routes of packages: institutions open, list and complete theirs (``/storage/v1``); the
other services read a package's status, export its key to its institution and import it
into accounts (``/internal/v1``, service token)."""

from __future__ import annotations

from fastapi import APIRouter

from hds_common.errors import (
    InsufficientStorage,
    ServiceTokenInvalid,
    problem_responses,
)
from hds_storage.deps import (
    INSTITUTION_PROBLEMS,
    CallingServiceDep,
    GrantDep,
    InstitutionDep,
    PackagesDep,
    PathId,
    RuntimeDep,
)
from hds_storage.errors import (
    AccountNotFound,
    AccountWithoutKey,
    GrantInvalid,
    GrantKeyRefused,
    GrantRequired,
    IdentityUnavailable,
    PackageEmpty,
    PackageIncomplete,
    PackageNotFound,
    SessionEnded,
    UploadInProgress,
)
from hds_storage.packages.schemas import (
    PackageKeyOut,
    PackagePublic,
    PackageStatus,
    SlotImport,
    SlotImported,
)
from hds_storage.packages.service import import_slot

public = APIRouter(prefix="/storage/v1", tags=["ingest"])
internal = APIRouter(prefix="/internal/v1", tags=["internal"])


@public.post(
    "/packages",
    status_code=201,
    summary="Open a new package",
    responses=problem_responses(*INSTITUTION_PROBLEMS),
)
async def create_package(holder: InstitutionDep, service: PackagesDep) -> PackagePublic:
    return await service.create(holder)


@public.get(
    "/packages",
    summary="The institution's packages",
    responses=problem_responses(*INSTITUTION_PROBLEMS),
)
async def list_packages(holder: InstitutionDep, service: PackagesDep) -> list[PackagePublic]:
    return await service.list_own(holder)


@public.get(
    "/packages/{package_id}",
    summary="One of the institution's packages",
    responses=problem_responses(*INSTITUTION_PROBLEMS, PackageNotFound),
)
async def get_package(
    package_id: PathId, holder: InstitutionDep, service: PackagesDep
) -> PackagePublic:
    return await service.get(holder, package_id)


@public.post(
    "/packages/{package_id}/complete",
    summary="Complete a package: consumers can see it from now on",
    responses=problem_responses(*INSTITUTION_PROBLEMS, PackageNotFound, UploadInProgress),
)
async def complete_package(
    package_id: PathId, holder: InstitutionDep, service: PackagesDep
) -> PackagePublic:
    return await service.complete(holder, package_id)


@internal.get(
    "/packages/{package_id}/key",
    summary="Package key for its publishing institution",
    responses=problem_responses(
        ServiceTokenInvalid, PackageNotFound, GrantRequired, GrantInvalid, SessionEnded
    ),
)
async def package_key(
    package_id: PathId,
    _: CallingServiceDep,
    service: PackagesDep,
    grant: GrantDep = None,
) -> PackageKeyOut:
    return await service.export_key(package_id, grant)


@internal.post(
    "/packages/{package_id}/slots",
    summary="Import a package into an account (key slot + holdings, within quota)",
    responses=problem_responses(
        ServiceTokenInvalid,
        GrantKeyRefused,
        PackageNotFound,
        AccountNotFound,
        PackageIncomplete,
        PackageEmpty,
        AccountWithoutKey,
        InsufficientStorage,
        IdentityUnavailable,
    ),
)
async def import_package(
    package_id: PathId, body: SlotImport, _: CallingServiceDep, runtime: RuntimeDep
) -> SlotImported:
    return await import_slot(runtime, package_id, body)


@internal.get(
    "/packages/{package_id}/status",
    summary="Whether a package is complete",
    responses=problem_responses(ServiceTokenInvalid, PackageNotFound),
)
async def package_status(
    package_id: PathId, _: CallingServiceDep, service: PackagesDep
) -> PackageStatus:
    return await service.status(package_id)
