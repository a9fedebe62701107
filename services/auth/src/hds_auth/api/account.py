"""Routes for the logged-in account: profile, settings, password change, public keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from hds_auth import service
from hds_auth.db import SessionDep
from hds_auth.deps import ClaimsDep, CurrentAccountDep, RuntimeDep, SessionIdDep, get_claims
from hds_auth.schemas import Me, PasswordChangeRequest, PublicKey, SettingsUpdate, SingleLine

router = APIRouter(tags=["account"])


@router.get("/auth/v1/me", summary="The account, its settings, quota and usage")
async def me(account: CurrentAccountDep, runtime: RuntimeDep) -> Me:
    return await service.me(runtime, account)


@router.patch("/auth/v1/me/settings", summary="Change settings (only the fields sent)")
async def update_settings(
    body: SettingsUpdate, account: CurrentAccountDep, session: SessionDep, runtime: RuntimeDep
) -> Me:
    await service.update_settings(session, account, body)
    return await service.me(runtime, account)


@router.post(
    "/auth/v1/password/change",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Change the password (ends the account's other sessions)",
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


@router.get(
    "/auth/v1/public-keys/{account_id}",
    summary="Public key of an account (any logged-in account may ask)",
    dependencies=[Depends(get_claims)],
)
async def public_key(account_id: uuid.UUID, session: SessionDep) -> PublicKey:
    return await service.public_key_by_id(session, account_id)


@router.get(
    "/auth/v1/public-keys",
    summary="Public key by e-mail address (institutions, referrers, administrators)",
)
async def public_key_by_email(
    email: Annotated[SingleLine, Query(min_length=3, max_length=320)],
    claims: ClaimsDep,
    session: SessionDep,
) -> PublicKey:
    return await service.public_key_by_email(session, claims.roles, email)
