"""Routes for the suite's own services (never routed by the gateway)."""

from __future__ import annotations

from fastapi import APIRouter

from hds_codes import service
from hds_codes.deps import InternalService, RuntimeDep
from hds_codes.schemas import ValidateRequest, ValidateResult
from hds_codes.validation import validate_code

router = APIRouter(prefix="/internal/v1", tags=["internal"])


@router.post(
    "/validate",
    summary="Check a code and birth date; the package grant on success",
    response_model=ValidateResult,
    responses={
        401: {"description": "Wrong, unknown or locked code (`invalid-code`)"},
        403: {"description": "The code has expired; the answers were right (`code-expired`)"},
        422: {"description": "The birth date is not a date"},
    },
)
async def validate(
    body: ValidateRequest, _caller: InternalService, runtime: RuntimeDep
) -> ValidateResult:
    birth_date = service.require_birth_date(body.birth_date, today=runtime.now().date())
    validated = await validate_code(
        runtime, code=body.code, birth_date=birth_date, client=body.client
    )
    return ValidateResult(
        code_id=validated.code_id,
        package_id=validated.package_id,
        grant=validated.grant,
        expires_at=validated.grant_expires_at,
        code_expires_at=validated.code_expires_at,
    )
