"""Routes for the suite's own services (``X-HDS-Service-Token``); never routed by the
gateway."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from hds_auth import service
from hds_auth.config import Settings
from hds_auth.db import SessionDep
from hds_auth.deps import RuntimeDep
from hds_auth.schemas import (
    DlxToken,
    DlxTokenRequest,
    InternalAccount,
    NotificationRequest,
    NotificationResult,
    SingleLine,
)
from hds_common.errors import UnprocessableContent
from hds_common.deps import require_service


def build_router(settings: Settings) -> APIRouter:
    del settings
    router = APIRouter(tags=["internal"], dependencies=[Depends(require_service)])

    @router.post("/internal/v1/dlx-tokens", summary="Mint a DLX token for a validated code")
    async def dlx_token(body: DlxTokenRequest, runtime: RuntimeDep) -> DlxToken:
        ttl = body.ttl_seconds or runtime.settings.dlx_token_ttl_seconds
        if ttl > runtime.settings.dlx_token_max_ttl_seconds:
            raise UnprocessableContent(
                f"ttl_seconds must be at most {runtime.settings.dlx_token_max_ttl_seconds}.",
                slug="ttl-out-of-range",
            )
        issued = runtime.issuer.dlx_token(
            code_id=body.code_id,
            package_id=body.package_id,
            grant=body.grant,
            key_session_id=body.key_session_id,
            ttl=ttl,
        )
        return DlxToken(token=issued.token, expires_in=issued.expires_in)

    @router.get("/internal/v1/accounts/{account_id}", summary="An account for other services")
    async def account(
        account_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
    ) -> InternalAccount:
        found = await service.get_account_or_404(session, account_id)
        return service.internal_view(runtime, found)

    @router.get("/internal/v1/accounts", summary="An account by e-mail address")
    async def account_by_email(
        email: Annotated[SingleLine, Query(min_length=3, max_length=320)],
        session: SessionDep,
        runtime: RuntimeDep,
    ) -> InternalAccount:
        found = await service.get_account_by_email_or_404(session, email)
        return service.internal_view(runtime, found)

    @router.post(
        "/internal/v1/notifications",
        status_code=status.HTTP_202_ACCEPTED,
        summary="Mail an account, if it wants notifications",
    )
    async def notify(
        body: NotificationRequest, session: SessionDep, runtime: RuntimeDep
    ) -> NotificationResult:
        sent = await service.notify(
            session, runtime, account_id=body.account_id, subject=body.subject, text=body.text
        )
        return NotificationResult(sent=sent)

    return router
