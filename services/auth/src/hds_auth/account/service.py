"""The logged-in account: its profile with quota and usage, its settings, public keys;
and the account look-ups and views the other features share.

Functions only ``flush()``; the request's session commits.
"""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.account import repository
from hds_auth.account.schemas import InstitutionProfile, Me, PublicKey, SettingsUpdate
from hds_auth.clients.storage import fetch_usage
from hds_auth.config import Settings
from hds_auth.errors import AccountNotFound, InstitutionOnlySetting, InvalidSetting
from hds_auth.models import Account
from hds_auth.schemas import AccountSettings
from hds_common.crypto import b64e
from hds_common.db import utcnow
from hds_common.row_views import view_of


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def get_account_or_404(session: AsyncSession, account_id: uuid.UUID) -> Account:
    account = await repository.get_account(session, account_id)
    if account is None:
        raise AccountNotFound()
    return account


async def get_account_by_email_or_404(session: AsyncSession, email: str) -> Account:
    account = await repository.get_account_by_email(session, normalise_email(email))
    if account is None:
        raise AccountNotFound("No account with this e-mail address.")
    return account


def quota_bytes(settings: Settings, account: Account) -> int | None:
    """The account's quota; None means none (institutions, unless one is configured)."""
    if account.quota_bytes is not None:
        return account.quota_bytes
    if account.role == "institution":
        return settings.institution_quota_bytes
    return settings.default_quota_bytes


def code_validity_days(settings: Settings, account: Account) -> int | None:
    """An institution's default code validity (the suite's default unless it chose one);
    None for every other role."""
    if account.role != "institution":
        return None
    return account.default_code_validity_days or settings.default_code_validity_days


def account_settings(account: Account) -> AccountSettings:
    return AccountSettings.model_validate(account, from_attributes=True)


async def me(settings: Settings, storage: httpx.AsyncClient, account: Account) -> Me:
    institution = None
    validity = code_validity_days(settings, account)
    if validity is not None:
        institution = InstitutionProfile(name=account.name, default_code_validity_days=validity)
    return view_of(
        Me,
        account,
        public_key=b64e(account.public_key),
        settings=account_settings(account),
        quota_bytes=quota_bytes(settings, account),
        used_bytes=await fetch_usage(storage, account.id, timeout=settings.storage_timeout_seconds),
        institution=institution,
    )


async def update_settings(session: AsyncSession, account: Account, update: SettingsUpdate) -> None:
    changes = update.model_dump(exclude_unset=True)
    if changes.get("default_code_validity_days") is not None and account.role != "institution":
        raise InstitutionOnlySetting()
    for field in ("deletion_mode", "notifications", "accept_shares", "name"):
        if field in changes:
            if changes[field] is None and field != "name":
                raise InvalidSetting(f"{field} cannot be null.")
            setattr(account, field, changes[field])
    if changes.get("default_code_validity_days") is not None:
        account.default_code_validity_days = changes["default_code_validity_days"]
    account.updated_at = utcnow()
    await session.flush()


async def public_key_by_id(session: AsyncSession, account_id: uuid.UUID) -> PublicKey:
    """Only active accounts: an account registered but never activated answers like an
    unknown id, so the id in a registration answer tells nobody whether it is real."""
    account = await repository.get_account(session, account_id)
    if account is None or account.disabled or account.activated_at is None:
        raise AccountNotFound()
    return view_of(PublicKey, account, account_id=account.id, public_key=b64e(account.public_key))
