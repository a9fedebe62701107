"""Import of a code into the caller's account: a user key slot, no data copied."""

from __future__ import annotations

from fastapi import APIRouter

from hds_codes.codes.service import require_birth_date, require_code
from hds_codes.deps import ACCOUNT_PROBLEMS, AccountDep, ClientAddressDep, RuntimeDep
from hds_codes.errors import (
    BirthDateInvalid,
    CodeExpired,
    CodeFormatInvalid,
    InvalidCode,
    UpstreamError,
)
from hds_codes.imports import service
from hds_codes.imports.schemas import ImportRequest, ImportResult
from hds_common.errors import InsufficientStorage, problem_responses

router = APIRouter(prefix="/codes/v1", tags=["import"])


@router.post(
    "/import",
    summary="Add the studies and documents of a code to the caller's account",
    response_model=ImportResult,
    responses=problem_responses(
        *ACCOUNT_PROBLEMS,
        InvalidCode,
        CodeExpired,
        CodeFormatInvalid,
        BirthDateInvalid,
        InsufficientStorage,
        UpstreamError,
    ),
)
async def import_code(
    body: ImportRequest, account: AccountDep, runtime: RuntimeDep, client: ClientAddressDep
) -> ImportResult:
    code = require_code(body.code)
    birth_date = require_birth_date(body.birth_date, today=runtime.now().date())
    return await service.import_code(
        runtime, account_id=account.sub, code=code, birth_date=birth_date, client=client
    )
