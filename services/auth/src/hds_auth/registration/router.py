"""Routes of registration and activation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from hds_auth import errors
from hds_auth.deps import RuntimeDep, no_store
from hds_auth.registration import service
from hds_auth.registration.schemas import (
    Accepted,
    AccountCreated,
    Activated,
    ActivateRequest,
    RegisterRequest,
    ResendActivationRequest,
)
from hds_common.db import SessionDep
from hds_common.errors import problem_responses

router = APIRouter(tags=["accounts"])

ACTIVATION_PROBLEMS = (
    errors.ActivationTokenInvalid,
    errors.ActivationTokenUsed,
    errors.ActivationTokenExpired,
)


@router.post(
    "/auth/v1/register",
    status_code=status.HTTP_201_CREATED,
    summary="Register a patient or referrer account; answers the recovery code once",
    dependencies=[Depends(no_store)],
    responses=problem_responses(*errors.PASSWORD_POLICY_PROBLEMS, errors.EmailTaken),
)
async def register(
    body: RegisterRequest, session: SessionDep, runtime: RuntimeDep
) -> AccountCreated:
    return await service.register(
        session,
        runtime,
        email=body.email,
        password=body.password,
        role=body.role,
        name=body.name,
    )


@router.get(
    "/auth/v1/activate",
    summary="Activate an account (the link in the mail)",
    responses=problem_responses(*ACTIVATION_PROBLEMS),
)
async def activate_link(
    token: Annotated[str, Query(min_length=1, max_length=200)], session: SessionDep
) -> Activated:
    account = await service.activate(session, token)
    return Activated(account_id=account.id, email=account.email)


@router.post(
    "/auth/v1/activate",
    summary="Activate an account",
    responses=problem_responses(*ACTIVATION_PROBLEMS),
)
async def activate(body: ActivateRequest, session: SessionDep) -> Activated:
    account = await service.activate(session, body.token)
    return Activated(account_id=account.id, email=account.email)


@router.post(
    "/auth/v1/activation/resend",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a new activation link (same answer for every address)",
    responses=problem_responses(errors.TooManyAttempts),
)
async def resend_activation(
    body: ResendActivationRequest, session: SessionDep, runtime: RuntimeDep
) -> Accepted:
    await service.resend_activation(session, runtime, email=body.email)
    return Accepted()
