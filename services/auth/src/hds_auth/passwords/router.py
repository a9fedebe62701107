"""Routes of the password reset (with the recovery code) and the password change (with
an account token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from hds_auth.deps import (
    TOKEN_PROBLEMS,
    ClientAddressDep,
    CurrentAccountDep,
    RuntimeDep,
    SessionIdDep,
    no_store,
)
from hds_auth.errors import (
    PASSWORD_POLICY_PROBLEMS,
    InvalidPassword,
    InvalidRecoveryCode,
    StorageUnavailable,
    TooManyAttempts,
)
from hds_auth.passwords import service
from hds_auth.passwords.schemas import (
    PasswordChangeRequest,
    PasswordResetDone,
    PasswordResetRequest,
)
from hds_common.db import SessionDep
from hds_common.errors import problem_responses

router = APIRouter()


@router.post(
    "/auth/v1/password/reset",
    tags=["accounts"],
    summary="Set a new password with the recovery code; answers a new recovery code",
    dependencies=[Depends(no_store)],
    responses=problem_responses(
        *PASSWORD_POLICY_PROBLEMS, InvalidRecoveryCode, TooManyAttempts, StorageUnavailable
    ),
)
async def reset_password(
    body: PasswordResetRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientAddressDep,
) -> PasswordResetDone:
    code = await service.reset_password(session, runtime, body, client=client)
    return PasswordResetDone(recovery_code=code)


@router.post(
    "/auth/v1/password/change",
    tags=["account"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change the password (ends the account's other sessions)",
    responses=problem_responses(
        *TOKEN_PROBLEMS,
        *PASSWORD_POLICY_PROBLEMS,
        InvalidPassword,
        TooManyAttempts,
        StorageUnavailable,
    ),
)
async def change_password(
    body: PasswordChangeRequest,
    account: CurrentAccountDep,
    session_id: SessionIdDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> None:
    await service.change_password(
        session,
        runtime,
        account,
        current_password=body.current_password,
        new_password=body.new_password,
        session_id=session_id,
    )
