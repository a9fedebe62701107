"""Routes of invitations: what an invitation offers and its acceptance (public, the
link in the mail), and their administration (administrators only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from hds_auth import errors
from hds_auth.deps import TOKEN_PROBLEMS, AdminDep, RuntimeDep, no_store, require_admin
from hds_auth.invitations import service
from hds_auth.invitations.schemas import (
    Invitation,
    InvitationAccepted,
    InvitationAcceptRequest,
    InvitationCreate,
    InvitationOffer,
)
from hds_common.db import SessionDep
from hds_common.errors import problem_responses
from hds_common.row_views import view_of

router = APIRouter(tags=["accounts"])

LINK_PROBLEMS = (errors.InvitationInvalid, errors.InvitationUsed, errors.InvitationExpired)


@router.get(
    "/auth/v1/invitation",
    summary="What an invitation offers (the link in the invitation mail)",
    dependencies=[Depends(no_store)],
    responses=problem_responses(*LINK_PROBLEMS),
)
async def invitation_offer(
    token: Annotated[str, Query(min_length=1, max_length=200)], session: SessionDep
) -> InvitationOffer:
    return await service.offer(session, token)


@router.post(
    "/auth/v1/invitation/accept",
    status_code=status.HTTP_201_CREATED,
    summary="Accept an invitation with a password of one's own; answers the recovery code once",
    dependencies=[Depends(no_store)],
    responses=problem_responses(
        *LINK_PROBLEMS, *errors.PASSWORD_POLICY_PROBLEMS, errors.EmailTaken
    ),
)
async def accept_invitation(
    body: InvitationAcceptRequest, session: SessionDep, runtime: RuntimeDep
) -> InvitationAccepted:
    account, recovery_code = await service.accept(
        session, runtime, token=body.token, password=body.password
    )
    return view_of(InvitationAccepted, account, account_id=account.id, recovery_code=recovery_code)


admin_router = APIRouter(
    tags=["administration"],
    dependencies=[Depends(require_admin)],
    responses=problem_responses(*TOKEN_PROBLEMS, errors.AdminOnly),
)


@admin_router.post(
    "/auth/v1/admin/invitations",
    status_code=status.HTTP_201_CREATED,
    summary="Invite an account of any role; the invitee chooses its password",
    responses=problem_responses(
        errors.InstitutionOnly, errors.EmailTaken, errors.InvitationPending
    ),
)
async def create_invitation(
    body: InvitationCreate, session: SessionDep, runtime: RuntimeDep, claims: AdminDep
) -> Invitation:
    invitation, mail_sent = await service.invite(
        session, runtime, body, invited_by=_uuid_or_none(claims.sub)
    )
    return service.view(invitation, mail_sent=mail_sent)


@admin_router.get("/auth/v1/admin/invitations", summary="Every invitation, newest first")
async def list_invitations(session: SessionDep) -> list[Invitation]:
    return [service.view(found) for found in await service.list_all(session)]


@admin_router.get(
    "/auth/v1/admin/invitations/{invitation_id}",
    summary="One invitation",
    responses=problem_responses(errors.InvitationNotFound),
)
async def get_invitation(invitation_id: uuid.UUID, session: SessionDep) -> Invitation:
    return service.view(await service.get_or_404(session, invitation_id))


@admin_router.post(
    "/auth/v1/admin/invitations/{invitation_id}/resend",
    summary="Mail a new link (the previous one stops working) with a new expiry",
    responses=problem_responses(
        errors.InvitationNotFound,
        errors.InvitationAlreadyAccepted,
        errors.InvitationRevoked,
        errors.EmailTaken,
    ),
)
async def resend_invitation(
    invitation_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep
) -> Invitation:
    found = await service.get_or_404(session, invitation_id)
    invitation, mail_sent = await service.resend(session, runtime, found)
    return service.view(invitation, mail_sent=mail_sent)


@admin_router.delete(
    "/auth/v1/admin/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an invitation that has not been accepted",
    responses=problem_responses(errors.InvitationNotFound, errors.InvitationAlreadyAccepted),
)
async def revoke_invitation(invitation_id: uuid.UUID, session: SessionDep) -> None:
    await service.revoke(session, await service.get_or_404(session, invitation_id))


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
