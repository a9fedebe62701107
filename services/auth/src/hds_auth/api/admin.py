"""Administration: accounts of any role, quota overrides, signing-key rotation."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Depends, Response, status

from hds_auth import service
from hds_auth.api.public import NO_STORE
from hds_auth.db import SessionDep
from hds_auth.deps import RuntimeDep, require_admin
from hds_auth.schemas import (
    AccountCreated,
    AdminAccount,
    AdminAccountCreate,
    AdminAccountUpdate,
    SigningKeyRotated,
)

router = APIRouter(tags=["administration"], dependencies=[Depends(require_admin)])


@router.post(
    "/auth/v1/admin/accounts",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account of any role (institutions, administrators)",
)
async def create_account(
    body: AdminAccountCreate,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
) -> AccountCreated:
    account, recovery_code, mail_sent = await service.create_account(
        session,
        runtime,
        email=body.email,
        password=body.password,
        role=body.role,
        name=body.name,
        activated=body.activated,
        quota_bytes=body.quota_bytes,
        default_code_validity_days=body.default_code_validity_days,
    )
    response.headers.update(NO_STORE)
    return service.created_view(account, recovery_code=recovery_code, mail_sent=mail_sent)


@router.get("/auth/v1/admin/accounts/{account_id}", summary="An account as administrators see it")
async def get_account(
    account_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> AdminAccount:
    account = await service.get_account_or_404(session, account_id)
    return service.admin_view(runtime, account)


@router.patch(
    "/auth/v1/admin/accounts/{account_id}",
    summary="Change role, name, activation, disabling, quota override, code validity",
)
async def update_account(
    account_id: uuid.UUID,
    body: AdminAccountUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
) -> AdminAccount:
    account = await service.get_account_or_404(session, account_id)
    await service.admin_update(session, runtime, account, body)
    return service.admin_view(runtime, account)


@router.post(
    "/auth/v1/admin/signing-keys/rotate",
    summary="Start signing with a new key; the previous one stays published until its "
    "tokens have expired",
)
async def rotate_signing_key(runtime: RuntimeDep) -> SigningKeyRotated:
    key = await asyncio.to_thread(runtime.keyring.rotate)
    return SigningKeyRotated(
        kid=key.kid, published_kids=[k.kid for k in runtime.keyring.published()]
    )
