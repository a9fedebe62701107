"""Registration of patients and referrers, and the activation of their accounts; the
creation of an account with its key pair, which invitations and the demo institution
use too.

Functions only ``flush()``; the request's session commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from functools import partial

import structlog
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth.account import repository as accounts
from hds_auth.account.key_slots import set_credentials
from hds_auth.account.service import normalise_email
from hds_auth.errors import (
    ActivationTokenExpired,
    ActivationTokenInvalid,
    ActivationTokenUsed,
    EmailTaken,
    InstitutionOnly,
    TooManyAttempts,
)
from hds_auth.invitations import repository as invitations
from hds_auth.mail import send_or_log
from hds_auth.models import Account, ActivationToken
from hds_auth.opaque_tokens import hash_secret, new_secret_token, row_of_token
from hds_auth.passwords.policy import check_password_policy
from hds_auth.registration import repository
from hds_auth.registration.schemas import AccountCreated
from hds_auth.runtime import Runtime
from hds_auth.throttle import Limit, account_key
from hds_auth.userkeys import generate_recovery_code, new_user_key, normalise_recovery_code
from hds_common.crypto import derive_kek, generate_salt
from hds_common.db import utcnow
from hds_common.row_views import view_of

log = structlog.get_logger("hds.auth")


async def create_account(
    session: AsyncSession,
    runtime: Runtime,
    *,
    email: str,
    password: str,
    role: str,
    name: str | None = None,
    activated: bool = False,
    quota_bytes: int | None = None,
    default_code_validity_days: int | None = None,
) -> tuple[Account, str]:
    """Create an account with its key pair under the password its holder chose; returns
    the account and its recovery code, to be shown exactly once to that holder.

    Called by registration, by the acceptance of an invitation and for the development
    demo institution only: no administrator ever chooses a password."""
    settings = runtime.settings
    email = normalise_email(email)
    check_password_policy(password, min_length=settings.password_min_length, email=email)
    if await accounts.email_exists(session, email):
        raise EmailTaken()
    if default_code_validity_days is not None and role != "institution":
        raise InstitutionOnly()
    private_key, public_key = new_user_key()
    recovery_code = generate_recovery_code()
    now = utcnow()
    account = Account(
        id=uuid.uuid4(),
        email=email,
        role=role,
        name=name,
        public_key=public_key,
        activated_at=now if activated else None,
        disabled=False,
        deletion_mode="automatic",
        notifications=True,
        # Nobody may push data into an account before its holder allows it.
        accept_shares=False,
        quota_bytes=quota_bytes,
        default_code_validity_days=(
            (default_code_validity_days or settings.default_code_validity_days)
            if role == "institution"
            else None
        ),
        created_at=now,
        updated_at=now,
    )
    await set_credentials(
        account,
        private_key,
        password=password,
        recovery_code=recovery_code,
        hashing=runtime.hashing,
    )
    session.add(account)
    try:
        await session.flush()
    except DatabaseIntegrityError:
        # Lost a race with a concurrent registration of the same address.
        raise EmailTaken() from None
    log.info("account_created", account_id=str(account.id), role=role, activated=activated)
    return account, recovery_code


async def register(
    session: AsyncSession,
    runtime: Runtime,
    *,
    email: str,
    password: str,
    role: str,
    name: str | None,
) -> AccountCreated:
    """Register a patient or referrer and mail the activation link.

    An address that has an account (or an open invitation) gets the same answer as a new
    one, after the same work, and its holder a mail saying someone tried: the answer must
    not tell anyone which addresses have accounts. The id and recovery code of that answer
    belong to no account; only the mailbox's holder can ever activate an account."""
    settings = runtime.settings
    email = normalise_email(email)
    check_password_policy(password, min_length=settings.password_min_length, email=email)
    now = utcnow()
    owner = await accounts.get_account_by_email(session, email)
    invited = owner is None and bool(await invitations.open_invitations_for(session, email, now))
    if owner is None and not invited:
        account, recovery_code = await create_account(
            session, runtime, email=email, password=password, role=role, name=name
        )
        mail_sent = await send_activation(session, runtime, account, now=now)
        return created_view(account, recovery_code=recovery_code, mail_sent=mail_sent)
    await _work_of_a_new_account(runtime, password)
    mail_sent = await _send_registration_notice(session, runtime, email, invited=invited, now=now)
    log.info("registration_of_a_taken_address")
    return AccountCreated.model_validate(
        {
            "id": uuid.uuid4(),
            "email": email,
            "role": role,
            "name": name,
            "activated": False,
            "activation_mail_sent": mail_sent,
            "recovery_code": generate_recovery_code(),
        }
    )


async def _work_of_a_new_account(runtime: Runtime, password: str) -> None:
    """The Argon2id computations of :func:`create_account`, so that the answer for a
    taken address takes as long as the answer for a new one."""
    params = runtime.settings.argon2
    await asyncio.gather(
        asyncio.to_thread(derive_kek, password.encode(), generate_salt(), params),
        asyncio.to_thread(
            derive_kek,
            normalise_recovery_code(generate_recovery_code()).encode(),
            generate_salt(),
            params,
        ),
        runtime.hashing.hash(password),
    )


async def _send_registration_notice(
    session: AsyncSession, runtime: Runtime, email: str, *, invited: bool, now: dt.datetime
) -> bool:
    """Tell the holder of ``email`` that someone tried to register it. Bounded per address
    like activation mails; beyond the bound the mail is skipped, the answer stays alike."""
    key = account_key("registration-notice", email)
    try:
        await runtime.throttle.check(
            session, [Limit(key, runtime.settings.activation_resends_per_account)], now=now
        )
    except TooManyAttempts:
        return True
    await runtime.throttle.record([key], now=now)
    if invited:
        situation = (
            "You have been invited to HDS with this address: accept the invitation with the "
            "link in the invitation mail (an administrator can send it again)."
        )
    else:
        situation = (
            "This address already has an HDS account, which is unchanged. If you forgot its "
            "password, reset it with your recovery code; if the account was never activated, "
            "ask for a new activation link."
        )
    text = (
        "Someone, perhaps you, tried to register a new HDS account with this e-mail "
        f"address.\n\n{situation}\n\nIf it was not you, you need not do anything.\n"
    )
    return await send_or_log(
        runtime.mailer,
        to=email,
        subject="Someone tried to register with your address",
        text=text,
        event="registration_notice_failed",
    )


async def send_activation(
    session: AsyncSession, runtime: Runtime, account: Account, *, now: dt.datetime
) -> bool:
    """Replace the account's unused activation links with a new one and mail it; False
    when the mail could not be handed over (the user can ask for another)."""
    settings = runtime.settings
    await repository.delete_unused_activation_tokens(session, account.id)
    token_id = uuid.uuid4()
    token, secret = new_secret_token(token_id)
    session.add(
        ActivationToken(
            id=token_id,
            account_id=account.id,
            secret_hash=hash_secret(secret),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=settings.activation_ttl_seconds),
        )
    )
    await session.flush()
    link = f"{settings.suite.public_base_url.rstrip('/')}/auth/v1/activate?token={token}"
    hours = settings.activation_ttl_seconds // 3600
    validity = f"{hours} hours" if hours >= 1 else f"{settings.activation_ttl_seconds} seconds"
    text = (
        "Welcome to HDS.\n\n"
        "Open this link to activate your account:\n\n"
        f"{link}\n\n"
        f"The link works once and expires in {validity}. If you did not register, "
        "ignore this mail.\n"
    )
    return await send_or_log(
        runtime.mailer,
        to=account.email,
        subject="Activate your HDS account",
        text=text,
        event="activation_mail_failed",
        account_id=str(account.id),
    )


async def activate(session: AsyncSession, token: str) -> Account:
    found = await row_of_token(token, partial(repository.get_activation_token, session))
    if found is None:
        raise ActivationTokenInvalid()
    row = found[0]
    now = utcnow()
    if row.used_at is not None:
        raise ActivationTokenUsed()
    if row.expires_at <= now:
        raise ActivationTokenExpired("This activation link has expired; request a new one.")
    if not await repository.claim_activation_token(session, row.id, now):
        raise ActivationTokenUsed()
    account = await accounts.get_account(session, row.account_id)
    if account is None:  # the row cascades with its account; only a race gets here
        raise ActivationTokenInvalid()
    if account.activated_at is None:
        account.activated_at = now
    await session.flush()
    log.info("account_activated", account_id=str(account.id))
    return account


async def resend_activation(session: AsyncSession, runtime: Runtime, *, email: str) -> None:
    """Mail a new link when the address belongs to an account awaiting activation. The
    answer is the same for every address; mail bombing is bounded per address."""
    now = utcnow()
    email = normalise_email(email)
    keys = [account_key("activation", email)]
    await runtime.throttle.check(
        session,
        [Limit(keys[0], runtime.settings.activation_resends_per_account)],
        now=now,
    )
    await runtime.throttle.record(keys, now=now)
    account = await accounts.get_account_by_email(session, email)
    if account is None or account.activated_at is not None or account.disabled:
        return
    await send_activation(session, runtime, account, now=now)


def created_view(account: Account, *, recovery_code: str, mail_sent: bool) -> AccountCreated:
    """The answer to a registration or an account created by an administrator."""
    return view_of(
        AccountCreated,
        account,
        activated=account.activated_at is not None,
        activation_mail_sent=mail_sent,
        recovery_code=recovery_code,
    )
