"""Routes for the logged-in account: profile, settings, public keys.

Public keys are looked up by account id only. There is no look-up by e-mail address: it
would tell any caller which addresses have accounts; sharing by address happens inside
the storage service, through the identity service's internal look-up."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends

from hds_auth.account import service
from hds_auth.account.schemas import Me, PublicKey, SettingsUpdate
from hds_auth.deps import TOKEN_PROBLEMS, CurrentAccountDep, RuntimeDep
from hds_auth.errors import AccountNotFound, InstitutionOnlySetting, InvalidSetting
from hds_common.db import SessionDep
from hds_common.deps import account_claims
from hds_common.errors import problem_responses

router = APIRouter(tags=["account"])


@router.get(
    "/auth/v1/me",
    summary="The account, its settings, quota and usage",
    responses=problem_responses(*TOKEN_PROBLEMS),
)
async def me(account: CurrentAccountDep, runtime: RuntimeDep) -> Me:
    return await service.me(runtime.settings, runtime.storage, account)


@router.patch(
    "/auth/v1/me/settings",
    summary="Change settings (only the fields sent)",
    responses=problem_responses(*TOKEN_PROBLEMS, InvalidSetting, InstitutionOnlySetting),
)
async def update_settings(
    body: SettingsUpdate, account: CurrentAccountDep, session: SessionDep, runtime: RuntimeDep
) -> Me:
    await service.update_settings(session, account, body)
    return await service.me(runtime.settings, runtime.storage, account)


@router.get(
    "/auth/v1/public-keys/{account_id}",
    summary="Public key of an active account (any logged-in account may ask)",
    dependencies=[Depends(account_claims)],
    responses=problem_responses(*TOKEN_PROBLEMS, AccountNotFound),
)
async def public_key(account_id: uuid.UUID, session: SessionDep) -> PublicKey:
    return await service.public_key_by_id(session, account_id)
