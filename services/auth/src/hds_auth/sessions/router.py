"""Routes of the login sessions: login, refresh, logout."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from hds_auth.deps import ClientAddressDep, RuntimeDep, no_store
from hds_auth.errors import (
    AccountDisabled,
    InvalidCredentials,
    InvalidRefreshToken,
    StorageUnavailable,
    TooManyAttempts,
)
from hds_auth.sessions import service
from hds_auth.sessions.schemas import LoginRequest, RefreshRequest, TokenPair
from hds_common.db import SessionDep
from hds_common.errors import problem_responses

router = APIRouter(tags=["accounts"])


@router.post(
    "/auth/v1/login",
    summary="Log in: access token (with grant) and refresh token",
    dependencies=[Depends(no_store)],
    responses=problem_responses(
        InvalidCredentials, AccountDisabled, TooManyAttempts, StorageUnavailable
    ),
)
async def login(
    body: LoginRequest, session: SessionDep, runtime: RuntimeDep, client: ClientAddressDep
) -> TokenPair:
    return await service.login(
        session, runtime, email=body.email, password=body.password, client=client
    )


@router.post(
    "/auth/v1/refresh",
    summary="Exchange a refresh token for new tokens",
    dependencies=[Depends(no_store)],
    responses=problem_responses(InvalidRefreshToken, StorageUnavailable),
)
async def refresh(body: RefreshRequest, session: SessionDep, runtime: RuntimeDep) -> TokenPair:
    return await service.refresh(session, runtime, refresh_token=body.refresh_token)


@router.post(
    "/auth/v1/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the session of a refresh token",
    responses=problem_responses(StorageUnavailable),
)
async def logout(body: RefreshRequest, session: SessionDep, runtime: RuntimeDep) -> None:
    await service.logout(session, runtime, refresh_token=body.refresh_token)
