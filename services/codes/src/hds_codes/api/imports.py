"""Import of a code into the caller's account: a user key slot, no data copied."""

from __future__ import annotations

from fastapi import APIRouter

from hds_codes import service
from hds_codes.deps import ClientAddress, CurrentAccount, RuntimeDep
from hds_codes.schemas import ImportRequest, ImportResult
from hds_codes.validation import validate_code

router = APIRouter(prefix="/codes/v1", tags=["import"])


@router.post(
    "/import",
    summary="Add the studies and documents of a code to the caller's account",
    response_model=ImportResult,
    responses={
        401: {"description": "Wrong, unknown or locked code (`invalid-code`), or no token"},
        403: {"description": "The code has expired; the answers were right (`code-expired`)"},
        507: {"description": "Over quota in manual deletion mode (`quota-exceeded`)"},
    },
)
async def import_code(
    body: ImportRequest, account: CurrentAccount, runtime: RuntimeDep, client: ClientAddress
) -> ImportResult:
    code = service.require_code(body.code)
    birth_date = service.require_birth_date(body.birth_date, today=runtime.now().date())
    validated = await validate_code(runtime, code=code, birth_date=birth_date, client=client)
    added = await runtime.storage.add_slot(
        validated.package_id, account_id=account.sub, package_key=validated.package_key
    )
    return ImportResult(
        package_id=validated.package_id,
        code_id=validated.code_id,
        studies=added.studies,
        documents=added.documents,
        bytes=added.bytes,
    )
