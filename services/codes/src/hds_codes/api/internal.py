"""Routes for the suite's own services (never routed by the gateway)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from hds_codes import service
from hds_codes.db import SessionDep
from hds_codes.deps import InternalService, RuntimeDep
from hds_codes.schemas import CodesValidity, ValidateRequest, ValidateResult
from hds_codes.validation import start_dlx_session, validate_code

router = APIRouter(prefix="/internal/v1", tags=["internal"])


@router.post(
    "/validate",
    summary="Check a code and birth date; a package key session and its grant on success",
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
    # The key stays with storage; the DLX token carries only the session's grant, which
    # ends when the code is revoked or expired, and at the latest when the code expires.
    started = await start_dlx_session(runtime, validated)
    return ValidateResult(
        code_id=validated.code_id,
        package_id=validated.package_id,
        grant=started.grant,
        key_session_id=started.session_id,
        expires_at=validated.session_expires_at,
        code_expires_at=validated.code_expires_at,
    )


@router.get(
    "/packages/{package_id}/validity",
    summary="Until when the package's codes are valid (storage asks before retiring it)",
)
async def package_validity(
    package_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")],
    _caller: InternalService,
    session: SessionDep,
) -> CodesValidity:
    return await service.codes_validity(session, package_id)
