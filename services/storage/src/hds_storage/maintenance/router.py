"""The codes service's report of until when a package's codes are valid: the retention
sweep's hint (``/internal/v1``, service token)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from hds_common.errors import ServiceTokenInvalid, problem_responses
from hds_storage.deps import CallingServiceDep, PathId, RuntimeDep
from hds_storage.errors import PackageNotFound, PackageRetired
from hds_storage.maintenance.retention import record_codes_validity
from hds_storage.maintenance.schemas import RetentionUpdate

router = APIRouter(prefix="/internal/v1", tags=["internal"])


@router.put(
    "/packages/{package_id}/retention",
    status_code=204,
    summary="Until when the package's codes are valid (the retention sweep's hint)",
    responses=problem_responses(ServiceTokenInvalid, PackageNotFound, PackageRetired),
)
async def package_retention(
    package_id: PathId, body: RetentionUpdate, _: CallingServiceDep, runtime: RuntimeDep
) -> Response:
    await record_codes_validity(runtime.session_maker, package_id, body.codes_valid_until)
    return Response(status_code=204)
