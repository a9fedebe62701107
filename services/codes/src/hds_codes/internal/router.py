"""Routes for the suite's own services (never routed by the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from hds_codes.codes.service import require_birth_date
from hds_codes.deps import RuntimeDep
from hds_codes.errors import BirthDateInvalid, CodeExpired, InvalidCode, UpstreamError
from hds_codes.internal import service
from hds_codes.internal.schemas import CodesValidity, ValidateRequest, ValidateResult
from hds_common.db import SessionDep
from hds_common.deps import CallingServiceDep
from hds_common.errors import ServiceTokenInvalid, problem_responses

router = APIRouter(prefix="/internal/v1", tags=["internal"])


@router.post(
    "/validate",
    summary="Check a code and birth date; a package key session and its grant on success",
    response_model=ValidateResult,
    responses=problem_responses(
        ServiceTokenInvalid, InvalidCode, CodeExpired, BirthDateInvalid, UpstreamError
    ),
)
async def validate(
    body: ValidateRequest, _caller: CallingServiceDep, runtime: RuntimeDep
) -> ValidateResult:
    birth_date = require_birth_date(body.birth_date, today=runtime.now().date())
    return await service.validate_for_dlx(
        runtime, code=body.code, birth_date=birth_date, client=body.client
    )


@router.get(
    "/packages/{package_id}/validity",
    summary="Until when the package's codes are valid (storage asks before retiring it)",
    responses=problem_responses(ServiceTokenInvalid),
)
async def package_validity(
    package_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")],
    _caller: CallingServiceDep,
    session: SessionDep,
) -> CodesValidity:
    return await service.codes_validity(session, package_id)
