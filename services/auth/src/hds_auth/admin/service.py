"""Administration of accounts: how administrators see an account and what they may
change (role, name, activation, disabling, quota override, code validity). No function
here creates an account or sets a password: invitations do, with the invitee.

Functions only ``flush()``; the request's session commits.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.account.service import account_settings, quota_bytes
from hds_auth.admin.schemas import AdminAccount, AdminAccountUpdate
from hds_auth.clients.storage import end_key_sessions
from hds_auth.config import Settings
from hds_auth.errors import InstitutionOnly
from hds_auth.models import Account
from hds_auth.runtime import Runtime
from hds_auth.sessions import repository as sessions
from hds_common.db import utcnow
from hds_common.row_views import view_of

log = structlog.get_logger("hds.auth")


def admin_view(settings: Settings, account: Account) -> AdminAccount:
    return view_of(
        AdminAccount,
        account,
        activated=account.activated_at is not None,
        settings=account_settings(account),
        quota_bytes=quota_bytes(settings, account),
        quota_is_default=account.quota_bytes is None,
    )


async def admin_update(
    session: AsyncSession, runtime: Runtime, account: Account, update: AdminAccountUpdate
) -> None:
    """Apply the fields sent; disabling ends every session of the account."""
    changes = update.model_dump(exclude_unset=True)
    now = utcnow()
    role = changes.get("role") or account.role
    if changes.get("default_code_validity_days") is not None and role != "institution":
        raise InstitutionOnly()
    if "role" in changes and changes["role"] is not None:
        account.role = changes["role"]
        account.default_code_validity_days = (
            (account.default_code_validity_days or runtime.settings.default_code_validity_days)
            if account.role == "institution"
            else None
        )
    if "name" in changes:
        account.name = changes["name"]
    if changes.get("activated") is not None:
        account.activated_at = (account.activated_at or now) if changes["activated"] else None
    if changes.get("disabled") is not None:
        account.disabled = changes["disabled"]
        if account.disabled:
            await sessions.revoke_account_sessions(session, account.id, now)
            await end_key_sessions(runtime.key_sessions, account.id)
    if "quota_bytes" in changes:
        account.quota_bytes = changes["quota_bytes"]
    if changes.get("default_code_validity_days") is not None:
        account.default_code_validity_days = changes["default_code_validity_days"]
    account.updated_at = now
    await session.flush()
    log.info("account_updated_by_admin", account_id=str(account.id), fields=sorted(changes))
