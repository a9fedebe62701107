"""Administration of accounts (administrators only). Invitations, the way accounts of
any role come into being, are in :mod:`hds_auth.invitations.router`; the signing-key
rotation in :mod:`hds_auth.signing.router`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from hds_auth.account.service import get_account_or_404
from hds_auth.admin import service
from hds_auth.admin.schemas import AdminAccount, AdminAccountUpdate
from hds_auth.deps import TOKEN_PROBLEMS, RuntimeDep, require_admin
from hds_auth.errors import AccountNotFound, AdminOnly, InstitutionOnly, StorageUnavailable
from hds_common.db import SessionDep
from hds_common.errors import problem_responses

router = APIRouter(
    tags=["administration"],
    dependencies=[Depends(require_admin)],
    responses=problem_responses(*TOKEN_PROBLEMS, AdminOnly),
)


@router.get(
    "/auth/v1/admin/accounts/{account_id}",
    summary="An account as administrators see it",
    responses=problem_responses(AccountNotFound),
)
async def get_account(
    account_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> AdminAccount:
    account = await get_account_or_404(session, account_id)
    return service.admin_view(runtime.settings, account)


@router.patch(
    "/auth/v1/admin/accounts/{account_id}",
    summary="Change role, name, activation, disabling, quota override, code validity",
    responses=problem_responses(AccountNotFound, InstitutionOnly, StorageUnavailable),
)
async def update_account(
    account_id: uuid.UUID,
    body: AdminAccountUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
) -> AdminAccount:
    account = await get_account_or_404(session, account_id)
    await service.admin_update(session, runtime, account, body)
    return service.admin_view(runtime.settings, account)
