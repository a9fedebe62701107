"""Routes for the suite's own services (``X-HDS-Service-Token``); never routed by the
gateway."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from hds_auth.account.service import get_account_by_email_or_404, get_account_or_404
from hds_auth.deps import RuntimeDep
from hds_auth.errors import AccountNotFound, MailFailed, TtlOutOfRange
from hds_auth.internal import service
from hds_auth.internal.schemas import (
    DlxToken,
    DlxTokenRequest,
    InternalAccount,
    NotificationRequest,
    NotificationResult,
)
from hds_auth.schemas import SingleLine
from hds_common.db import SessionDep
from hds_common.deps import require_service
from hds_common.errors import ServiceTokenInvalid, UnprocessableContent, problem_responses

router = APIRouter(
    tags=["internal"],
    dependencies=[Depends(require_service)],
    responses=problem_responses(ServiceTokenInvalid),
)


@router.post(
    "/internal/v1/dlx-tokens",
    summary="Mint a DLX token for a validated code",
    # Naming a 422 replaces FastAPI's default entry: the request's validation is one too.
    responses=problem_responses(UnprocessableContent, TtlOutOfRange),
)
async def dlx_token(body: DlxTokenRequest, runtime: RuntimeDep) -> DlxToken:
    return service.dlx_token(runtime.settings, runtime.issuer, body)


@router.get(
    "/internal/v1/accounts/{account_id}",
    summary="An account for other services",
    responses=problem_responses(AccountNotFound),
)
async def account(
    account_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> InternalAccount:
    return service.internal_view(runtime.settings, await get_account_or_404(session, account_id))


@router.get(
    "/internal/v1/accounts",
    summary="An account by e-mail address",
    responses=problem_responses(AccountNotFound),
)
async def account_by_email(
    email: Annotated[SingleLine, Query(min_length=3, max_length=320)],
    session: SessionDep,
    runtime: RuntimeDep,
) -> InternalAccount:
    found = await get_account_by_email_or_404(session, email)
    return service.internal_view(runtime.settings, found)


@router.post(
    "/internal/v1/notifications",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Mail an account, if it wants notifications",
    responses=problem_responses(AccountNotFound, MailFailed),
)
async def notify(
    body: NotificationRequest, session: SessionDep, runtime: RuntimeDep
) -> NotificationResult:
    sent = await service.notify(
        session,
        runtime.mailer,
        account_id=body.account_id,
        subject=body.subject,
        text=body.text,
    )
    return NotificationResult(sent=sent)
