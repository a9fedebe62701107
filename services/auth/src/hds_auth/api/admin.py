"""Administration: invitations (accounts of any role), account changes, quota overrides,
signing-key rotation. No route here creates an account or sets a password: the invitee
does both when accepting."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Depends, status

from hds_auth import invitations, service
from hds_auth.db import SessionDep
from hds_auth.deps import ClaimsDep, RuntimeDep, require_admin
from hds_auth.schemas import (
    AdminAccount,
    AdminAccountUpdate,
    Invitation,
    InvitationCreate,
    SigningKeyRotated,
)

router = APIRouter(tags=["administration"], dependencies=[Depends(require_admin)])


@router.post(
    "/auth/v1/admin/invitations",
    status_code=status.HTTP_201_CREATED,
    summary="Invite an account of any role; the invitee chooses its password",
)
async def create_invitation(
    body: InvitationCreate, session: SessionDep, runtime: RuntimeDep, claims: ClaimsDep
) -> Invitation:
    invitation, mail_sent = await invitations.invite(
        session,
        runtime,
        email=body.email,
        role=body.role,
        name=body.name,
        quota_bytes=body.quota_bytes,
        default_code_validity_days=body.default_code_validity_days,
        invited_by=_uuid_or_none(claims.sub),
    )
    return invitations.view(invitation, mail_sent=mail_sent)


@router.get("/auth/v1/admin/invitations", summary="Every invitation, newest first")
async def list_invitations(session: SessionDep) -> list[Invitation]:
    return [invitations.view(found) for found in await invitations.list_all(session)]


@router.get("/auth/v1/admin/invitations/{invitation_id}", summary="One invitation")
async def get_invitation(invitation_id: uuid.UUID, session: SessionDep) -> Invitation:
    return invitations.view(await invitations.get_or_404(session, invitation_id))


@router.post(
    "/auth/v1/admin/invitations/{invitation_id}/resend",
    summary="Mail a new link (the previous one stops working) with a new expiry",
)
async def resend_invitation(
    invitation_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> Invitation:
    found = await invitations.get_or_404(session, invitation_id)
    invitation, mail_sent = await invitations.resend(session, runtime, found)
    return invitations.view(invitation, mail_sent=mail_sent)


@router.delete(
    "/auth/v1/admin/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an invitation that has not been accepted",
)
async def revoke_invitation(invitation_id: uuid.UUID, session: SessionDep) -> None:
    await invitations.revoke(session, await invitations.get_or_404(session, invitation_id))


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


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
