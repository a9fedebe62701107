"""Onboarding by invitation: how institutions, administrators and every other account an
administrator wants come into being.

An administrator (or the command line) names the address, the role and the limits; the
invitee gets a mail with a single-use link that expires. Only when the invitee opens it
and chooses a password are the account, its key pair and its recovery code created, and
the recovery code is shown once, in the answer to that request. So nothing that unlocks
the account's key is ever shown to, logged for or stored readably for an administrator or
the operator: they see that an invitation exists and whether it was accepted. The link's
secret is stored only as a hash.

Functions only ``flush()``; the request's session commits.
"""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.account import repository as accounts
from hds_auth.account.service import normalise_email
from hds_auth.errors import (
    EmailTaken,
    InstitutionOnly,
    InvitationAlreadyAccepted,
    InvitationExpired,
    InvitationInvalid,
    InvitationNotFound,
    InvitationPending,
    InvitationRevoked,
    InvitationUsed,
)
from hds_auth.invitations import repository
from hds_auth.invitations.schemas import Invitation as InvitationView
from hds_auth.invitations.schemas import InvitationCreate, InvitationOffer, InvitationState
from hds_auth.mail import send_or_log
from hds_auth.models import Account, Invitation
from hds_auth.opaque_tokens import hash_secret, new_secret_token, row_of_token
from hds_auth.passwords.policy import check_password_policy
from hds_auth.registration.service import create_account
from hds_auth.runtime import Runtime
from hds_common.db import utcnow
from hds_common.row_views import view_of

__all__ = [
    "accept",
    "get_or_404",
    "invite",
    "list_all",
    "offer",
    "resend",
    "revoke",
    "state_of",
    "view",
]

log = structlog.get_logger("hds.auth")

ROLE_NAMES = {
    "patient": "a patient",
    "referrer": "a referring physician",
    "institution": "an institution",
    "admin": "an administrator",
}


def state_of(invitation: Invitation, now: dt.datetime) -> InvitationState:
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    if invitation.expires_at <= now:
        return "expired"
    return "pending"


def view(invitation: Invitation, *, mail_sent: bool | None = None) -> InvitationView:
    return view_of(
        InvitationView, invitation, state=state_of(invitation, utcnow()), mail_sent=mail_sent
    )


async def invite(
    session: AsyncSession,
    runtime: Runtime,
    request: InvitationCreate,
    *,
    invited_by: uuid.UUID | None = None,
) -> tuple[Invitation, bool]:
    """Record an invitation and mail its link; returns it and whether the mail went out
    (when not, :func:`resend` tries again). The routes and the command line send the
    same validated request."""
    email = normalise_email(request.email)
    role = request.role
    if request.default_code_validity_days is not None and role != "institution":
        raise InstitutionOnly()
    if await accounts.email_exists(session, email):
        # Only administrators get here; they may know which addresses have accounts.
        raise EmailTaken()
    now = utcnow()
    if await repository.open_invitations_for(session, email, now):
        raise InvitationPending("This address has an open invitation; send it again instead.")
    invitation = Invitation(
        # The request's fields as they are, but the address: normalised.
        **request.model_dump(exclude={"email"}),
        id=uuid.uuid4(),
        email=email,
        invited_by=invited_by,
        secret_hash=b"",
        created_at=now,
        sent_at=now,
        expires_at=now,
    )
    session.add(invitation)
    mail_sent = await _new_link_and_mail(session, runtime, invitation, now=now)
    log.info("invitation_created", invitation_id=str(invitation.id), role=role)
    return invitation, mail_sent


async def resend(
    session: AsyncSession, runtime: Runtime, invitation: Invitation
) -> tuple[Invitation, bool]:
    """A new link (the previous one stops working) with a new expiry, mailed again."""
    now = utcnow()
    state = state_of(invitation, now)
    if state == "accepted":
        raise InvitationAlreadyAccepted(
            "This invitation has been accepted; it cannot be sent again."
        )
    if state == "revoked":
        raise InvitationRevoked("This invitation has been revoked; it cannot be sent again.")
    if await accounts.email_exists(session, invitation.email):
        raise EmailTaken()
    mail_sent = await _new_link_and_mail(session, runtime, invitation, now=now)
    log.info("invitation_resent", invitation_id=str(invitation.id))
    return invitation, mail_sent


async def revoke(session: AsyncSession, invitation: Invitation) -> None:
    """The link stops working; an accepted invitation is an account and stays one."""
    if invitation.accepted_at is not None:
        raise InvitationAlreadyAccepted(
            "This invitation has been accepted; disable the account instead."
        )
    if invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        await session.flush()
        log.info("invitation_revoked", invitation_id=str(invitation.id))


async def get_or_404(session: AsyncSession, invitation_id: uuid.UUID) -> Invitation:
    invitation = await repository.get_invitation(session, invitation_id)
    if invitation is None:
        raise InvitationNotFound("No such invitation.")
    return invitation


async def list_all(session: AsyncSession) -> list[Invitation]:
    return await repository.list_invitations(session)


async def _new_link_and_mail(
    session: AsyncSession, runtime: Runtime, invitation: Invitation, *, now: dt.datetime
) -> bool:
    settings = runtime.settings
    token, secret = new_secret_token(invitation.id)
    invitation.secret_hash = hash_secret(secret)
    invitation.sent_at = now
    invitation.expires_at = now + dt.timedelta(seconds=settings.invitation_ttl_seconds)
    await session.flush()
    link = f"{settings.suite.public_base_url.rstrip('/')}/auth/v1/invitation?token={token}"
    welcome = ROLE_NAMES.get(invitation.role, invitation.role)
    if invitation.name:
        welcome += f", {invitation.name}"
    text = (
        f"You have been invited to HDS as {welcome}.\n\n"
        "Open this link to choose your password and create the account:\n\n"
        f"{link}\n\n"
        "(or send the token to POST /auth/v1/invitation/accept with the password you "
        f"choose: {token})\n\n"
        "The link works once and expires at "
        f"{invitation.expires_at.strftime('%Y-%m-%d %H:%M')} UTC.\n\n"
        "When you accept, you see your recovery code once. Keep it safe: it is the only "
        "way to set a new password without losing your data, and nobody else, not even "
        "an administrator, ever sees it or your password.\n\n"
        "If you did not expect this invitation, ignore this mail.\n"
    )
    return await send_or_log(
        runtime.mailer,
        to=invitation.email,
        subject="Your invitation to HDS",
        text=text,
        event="invitation_mail_failed",
        invitation_id=str(invitation.id),
    )


async def _by_token(session: AsyncSession, token: str) -> Invitation:
    """The invitation of a link, or the answer to give for it."""
    found = await row_of_token(token, partial(repository.get_invitation, session))
    if found is None or found[0].revoked_at is not None:
        raise InvitationInvalid()
    invitation = found[0]
    if invitation.accepted_at is not None:
        raise InvitationUsed()
    if invitation.expires_at <= utcnow():
        raise InvitationExpired(
            "This invitation has expired; ask the administrator to send it again."
        )
    return invitation


async def offer(session: AsyncSession, token: str) -> InvitationOffer:
    """What an invitation offers, for the page where the invitee chooses a password."""
    invitation = await _by_token(session, token)
    return InvitationOffer.model_validate(invitation, from_attributes=True)


async def accept(
    session: AsyncSession, runtime: Runtime, *, token: str, password: str
) -> tuple[Account, str]:
    """Create the invited account with the invitee's own password: its key pair is
    generated now. Returns the account and its recovery code (for this answer only)."""
    invitation = await _by_token(session, token)
    check_password_policy(
        password, min_length=runtime.settings.password_min_length, email=invitation.email
    )
    now = utcnow()
    if not await repository.claim_invitation(session, invitation.id, now):
        raise InvitationUsed()
    # The link proves the mailbox, so the account is active at once.
    account, recovery_code = await create_account(
        session,
        runtime,
        email=invitation.email,
        password=password,
        role=invitation.role,
        name=invitation.name,
        activated=True,
        quota_bytes=invitation.quota_bytes,
        default_code_validity_days=invitation.default_code_validity_days,
    )
    invitation.accepted_at = now
    invitation.account_id = account.id
    await session.flush()
    log.info("invitation_accepted", invitation_id=str(invitation.id), account_id=str(account.id))
    return account, recovery_code
