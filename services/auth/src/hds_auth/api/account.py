"""Routes for the logged-in account: profile, settings, password change, public keys.

Public keys are looked up by account id only. There is no look-up by e-mail address: it
would tell any caller which addresses have accounts; sharing by address happens inside
the storage service, through the identity service's internal look-up."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, status

from hds_auth import service
from hds_auth.db import SessionDep
from hds_auth.deps import CurrentAccountDep, RuntimeDep, SessionIdDep, get_claims
from hds_auth.schemas import Me, PasswordChangeRequest, PublicKey, SettingsUpdate

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
    summary="Public key of an active account (any logged-in account may ask)",
    dependencies=[Depends(get_claims)],
)
async def public_key(account_id: uuid.UUID, session: SessionDep) -> PublicKey:
    return await service.public_key_by_id(session, account_id)
