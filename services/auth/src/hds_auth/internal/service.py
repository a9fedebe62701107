"""What the suite's own services ask of the identity service: DLX tokens for validated
codes, accounts by id or address, and notification mails."""

from __future__ import annotations

import uuid

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.account.service import code_validity_days, get_account_or_404, quota_bytes
from hds_auth.config import Settings
from hds_auth.errors import MailFailed, TtlOutOfRange
from hds_auth.internal.schemas import DlxToken, DlxTokenRequest, InternalAccount
from hds_auth.mail import Mailer, MailError, build_message
from hds_auth.models import Account
from hds_auth.signing.issuer import TokenIssuer
from hds_common.crypto import b64e
from hds_common.row_views import view_of

log = structlog.get_logger("hds.auth")


def dlx_token(settings: Settings, issuer: TokenIssuer, request: DlxTokenRequest) -> DlxToken:
    ttl = request.ttl_seconds or settings.dlx_token_ttl_seconds
    if ttl > settings.dlx_token_max_ttl_seconds:
        raise TtlOutOfRange(f"ttl_seconds must be at most {settings.dlx_token_max_ttl_seconds}.")
    issued = issuer.dlx_token(
        code_id=request.code_id,
        package_id=request.package_id,
        grant=request.grant,
        key_session_id=request.key_session_id,
        ttl=ttl,
    )
    return DlxToken(token=issued.token, expires_in=issued.expires_in)


def internal_view(settings: Settings, account: Account) -> InternalAccount:
    return view_of(
        InternalAccount,
        account,
        public_key=b64e(account.public_key),
        quota_bytes=quota_bytes(settings, account),
        active=account.activated_at is not None and not account.disabled,
        default_code_validity_days=code_validity_days(settings, account),
    )


async def notify(
    session: AsyncSession,
    mailer: Mailer,
    *,
    account_id: uuid.UUID,
    subject: str,
    text: str,
) -> bool:
    """Mail the account if it wants notifications; True when a mail went out."""
    account = await get_account_or_404(session, account_id)
    if not account.notifications or account.activated_at is None or account.disabled:
        return False
    message = build_message(sender=mailer.sender, to=account.email, subject=subject, text=text)
    try:
        await mailer.send(message)
    except MailError as exc:
        log.error("notification_mail_failed", account_id=str(account_id), error=str(exc))
        raise MailFailed("The mail server did not take the message.") from exc
    return True
