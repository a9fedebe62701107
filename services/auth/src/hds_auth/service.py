"""Accounts: registration, activation, password reset and change, settings, look-ups,
administration. Session handling (login, refresh, logout) is in :mod:`hds_auth.sessions`.

Functions only ``flush()``; the request's session commits.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
import structlog
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hds_auth import repository
from hds_auth.deps import Runtime
from hds_auth.mail import MailError, build_message, send_or_log
from hds_auth.models import Account, ActivationToken
from hds_auth.opaque_tokens import hash_secret, new_secret_token, parse_secret_token, secret_matches
from hds_auth.passwords import check_password_policy
from hds_auth.schemas import (
    AccountCreated,
    AccountSettings,
    AdminAccount,
    AdminAccountUpdate,
    InstitutionProfile,
    InternalAccount,
    Me,
    PublicKey,
    SettingsUpdate,
)
from hds_auth.throttle import Limit, account_key, client_key
from hds_auth.userkeys import (
    KeySlot,
    WrongSecret,
    generate_recovery_code,
    new_user_key,
    normalise_recovery_code,
    unwrap_slot,
    wrap_slot,
)
from hds_common.crypto import b64e, derive_kek, generate_salt
from hds_common.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
)

log = structlog.get_logger("hds.auth")

PASSWORD_SLOT = "password"
RECOVERY_SLOT = "recovery"


async def end_key_sessions(
    runtime: Runtime,
    account_id: uuid.UUID,
    *,
    family_id: uuid.UUID | None = None,
    keep_family: uuid.UUID | None = None,
) -> None:
    """End the account's key sessions at storage (503 when it cannot be reached, which
    rolls the request back: nothing is reported ended that still opens a key)."""
    if runtime.key_sessions is not None:
        await runtime.key_sessions.end(account_id, family_id=family_id, keep_family=keep_family)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_slot(account: Account) -> KeySlot:
    return KeySlot(
        account.password_key_salt, account.password_key_kdf, account.password_wrapped_key
    )


def recovery_slot(account: Account) -> KeySlot:
    return KeySlot(
        account.recovery_key_salt, account.recovery_key_kdf, account.recovery_wrapped_key
    )


def _set_password_slot(account: Account, slot: KeySlot) -> None:
    account.password_key_salt = slot.salt
    account.password_key_kdf = slot.kdf
    account.password_wrapped_key = slot.wrapped


def _set_recovery_slot(account: Account, slot: KeySlot) -> None:
    account.recovery_key_salt = slot.salt
    account.recovery_key_kdf = slot.kdf
    account.recovery_wrapped_key = slot.wrapped


# -- registration and activation -----------------------------------------------------


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
    if await repository.email_exists(session, email):
        raise _email_taken()
    if default_code_validity_days is not None and role != "institution":
        raise BadRequest("Only institutions have a default code validity.", slug="institution-only")
    account_id = uuid.uuid4()
    private_key, public_key = new_user_key()
    recovery_code = generate_recovery_code()
    params = settings.argon2
    # Three Argon2id computations; they run in worker threads side by side.
    password_key, recovery_key, password_hash = await asyncio.gather(
        wrap_slot(
            private_key, password, purpose=PASSWORD_SLOT, account_id=account_id, params=params
        ),
        wrap_slot(
            private_key,
            normalise_recovery_code(recovery_code),
            purpose=RECOVERY_SLOT,
            account_id=account_id,
            params=params,
        ),
        runtime.hashing.hash(password),
    )
    now = utcnow()
    account = Account(
        id=account_id,
        email=email,
        role=role,
        name=name,
        password_hash=password_hash,
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
    _set_password_slot(account, password_key)
    _set_recovery_slot(account, recovery_key)
    session.add(account)
    try:
        await session.flush()
    except DatabaseIntegrityError:
        # Lost a race with a concurrent registration of the same address.
        raise _email_taken() from None
    log.info("account_created", account_id=str(account_id), role=role, activated=activated)
    return account, recovery_code


def _email_taken() -> Conflict:
    return Conflict("An account with this e-mail address exists already.", slug="email-taken")


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
    owner = await repository.get_account_by_email(session, email)
    invited = owner is None and bool(await repository.open_invitations_for(session, email, now))
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
    except TooManyRequests:
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
        sender=runtime.settings.mail_from,
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
        sender=settings.mail_from,
        to=account.email,
        subject="Activate your HDS account",
        text=text,
        event="activation_mail_failed",
        account_id=str(account.id),
    )


async def activate(session: AsyncSession, token: str) -> Account:
    parsed = parse_secret_token(token)
    row = await repository.get_activation_token(session, parsed[0]) if parsed else None
    if parsed is None or row is None or not secret_matches(row.secret_hash, parsed[1]):
        raise BadRequest(
            "This activation link is not valid.",
            slug="activation-token-invalid",
            title="Invalid activation link",
        )
    now = utcnow()
    if row.used_at is not None:
        raise Conflict(
            "This activation link has been used already.",
            slug="activation-token-used",
            title="Activation link used",
        )
    if row.expires_at <= now:
        raise BadRequest(
            "This activation link has expired; request a new one.",
            slug="activation-token-expired",
            title="Activation link expired",
        )
    if not await repository.claim_activation_token(session, row.id, now):
        raise Conflict(
            "This activation link has been used already.",
            slug="activation-token-used",
            title="Activation link used",
        )
    account = await repository.get_account(session, row.account_id)
    if account is None:  # the row cascades with its account; only a race gets here
        raise BadRequest("This activation link is not valid.", slug="activation-token-invalid")
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
    account = await repository.get_account_by_email(session, email)
    if account is None or account.activated_at is not None or account.disabled:
        return
    await send_activation(session, runtime, account, now=now)


# -- passwords -----------------------------------------------------------------------


def _invalid_recovery() -> Unauthorized:
    return Unauthorized(
        "The e-mail address or the recovery code is wrong.",
        slug="invalid-recovery-code",
        title="Invalid recovery code",
    )


async def reset_password(
    session: AsyncSession,
    runtime: Runtime,
    *,
    email: str,
    recovery_code: str,
    new_password: str,
    client: str | None,
) -> str:
    """Set a new password with the recovery code; the private key is rewrapped, not
    replaced, so all data stays readable. Returns the new recovery code (the old one is
    void). Every session of the account is ended."""
    settings = runtime.settings
    email = normalise_email(email)
    check_password_policy(new_password, min_length=settings.password_min_length, email=email)
    now = utcnow()
    limits = [
        Limit(account_key("reset", email), settings.reset_failures_per_account),
        Limit(client_key("reset", client), settings.reset_failures_per_client),
    ]
    await runtime.throttle.check(session, limits, now=now)
    # Locked (PostgreSQL) so that two resets with the same code cannot both succeed.
    account = await repository.get_account_by_email(session, email, for_update=True)
    code = normalise_recovery_code(recovery_code)
    private_key: bytes | None = None
    if account is None:
        # Same work as a wrong code for a real account.
        await _dummy_kek(runtime, code)
    else:
        try:
            private_key = await unwrap_slot(
                recovery_slot(account), code, purpose=RECOVERY_SLOT, account_id=account.id
            )
        except WrongSecret:
            private_key = None
    if account is None or private_key is None:
        await runtime.throttle.record([limit.key for limit in limits], now=now)
        log.info("password_reset_failed")
        raise _invalid_recovery()

    new_code = generate_recovery_code()
    params = settings.argon2
    password_key, recovery_key, password_hash = await asyncio.gather(
        wrap_slot(
            private_key, new_password, purpose=PASSWORD_SLOT, account_id=account.id, params=params
        ),
        wrap_slot(
            private_key,
            normalise_recovery_code(new_code),
            purpose=RECOVERY_SLOT,
            account_id=account.id,
            params=params,
        ),
        runtime.hashing.hash(new_password),
    )
    _set_password_slot(account, password_key)
    _set_recovery_slot(account, recovery_key)
    account.password_hash = password_hash
    account.updated_at = now
    await repository.revoke_account_sessions(session, account.id, now)
    await end_key_sessions(runtime, account.id)
    await runtime.throttle.clear(
        session, [account_key("reset", email), account_key("login", email)]
    )
    await session.flush()
    log.info("password_reset", account_id=str(account.id))
    return new_code


async def _dummy_kek(runtime: Runtime, secret: str) -> None:
    await asyncio.to_thread(
        derive_kek, (secret or "-").encode(), generate_salt(), runtime.settings.argon2
    )


async def change_password(
    session: AsyncSession,
    runtime: Runtime,
    account: Account,
    *,
    current_password: str,
    new_password: str,
    session_id: str | None,
) -> None:
    """Rewrap the private key under the new password; other sessions end, this one stays."""
    settings = runtime.settings
    check_password_policy(
        new_password, min_length=settings.password_min_length, email=account.email
    )
    now = utcnow()
    # A stolen access token must not become a password oracle beyond the login budget.
    limit = Limit(account_key("login", account.email), settings.login_failures_per_account)
    await runtime.throttle.check(session, [limit], now=now)
    locked = await repository.get_account_for_update(session, account.id)
    assert locked is not None
    if not await runtime.hashing.verify(locked.password_hash, current_password):
        await runtime.throttle.record([limit.key], now=now)
        raise Forbidden("The current password is wrong.", slug="invalid-password")
    try:
        private_key = await unwrap_slot(
            password_slot(locked), current_password, purpose=PASSWORD_SLOT, account_id=locked.id
        )
    except WrongSecret:
        raise RuntimeError("password hash and password key slot disagree") from None
    _set_password_slot(
        locked,
        await wrap_slot(
            private_key,
            new_password,
            purpose=PASSWORD_SLOT,
            account_id=locked.id,
            params=settings.argon2,
        ),
    )
    locked.password_hash = await runtime.hashing.hash(new_password)
    locked.updated_at = now
    keep = _uuid_or_none(session_id)
    await repository.revoke_account_sessions(session, locked.id, now, keep_family=keep)
    await end_key_sessions(runtime, locked.id, keep_family=keep)
    await session.flush()
    log.info("password_changed", account_id=str(locked.id))


def _uuid_or_none(text: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


# -- the account ---------------------------------------------------------------------


def quota_bytes(runtime: Runtime, account: Account) -> int | None:
    """The account's quota; None means none (institutions, unless one is configured)."""
    if account.quota_bytes is not None:
        return account.quota_bytes
    if account.role == "institution":
        return runtime.settings.institution_quota_bytes
    return runtime.settings.default_quota_bytes


def account_settings(account: Account) -> AccountSettings:
    return AccountSettings.model_validate(
        {
            "deletion_mode": account.deletion_mode,
            "notifications": account.notifications,
            "accept_shares": account.accept_shares,
        }
    )


async def fetch_usage(runtime: Runtime, account_id: uuid.UUID) -> int | None:
    """Bytes the account uses, from the storage service; None when it cannot tell."""
    try:
        response = await runtime.storage.get(
            f"/internal/v1/usage/{account_id}",
            timeout=runtime.settings.storage_timeout_seconds,
        )
        response.raise_for_status()
        used = response.json()["used_bytes"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("storage_usage_unavailable", account_id=str(account_id), error=repr(exc))
        return None
    return used if isinstance(used, int) and not isinstance(used, bool) else None


async def me(runtime: Runtime, account: Account) -> Me:
    institution = None
    if account.role == "institution":
        institution = InstitutionProfile(
            name=account.name,
            default_code_validity_days=(
                account.default_code_validity_days or runtime.settings.default_code_validity_days
            ),
        )
    return Me.model_validate(
        {
            "id": account.id,
            "email": account.email,
            "role": account.role,
            "name": account.name,
            "created_at": account.created_at,
            "public_key": b64e(account.public_key),
            "settings": account_settings(account),
            "quota_bytes": quota_bytes(runtime, account),
            "used_bytes": await fetch_usage(runtime, account.id),
            "institution": institution,
        }
    )


async def update_settings(session: AsyncSession, account: Account, update: SettingsUpdate) -> None:
    changes = update.model_dump(exclude_unset=True)
    if changes.get("default_code_validity_days") is not None and account.role != "institution":
        raise Forbidden("Only institutions have a default code validity.", slug="institution-only")
    for field in ("deletion_mode", "notifications", "accept_shares", "name"):
        if field in changes:
            if changes[field] is None and field != "name":
                raise BadRequest(f"{field} cannot be null.", slug="invalid-setting")
            setattr(account, field, changes[field])
    if changes.get("default_code_validity_days") is not None:
        account.default_code_validity_days = changes["default_code_validity_days"]
    account.updated_at = utcnow()
    await session.flush()


def created_view(account: Account, *, recovery_code: str, mail_sent: bool) -> AccountCreated:
    """The answer to a registration or an account created by an administrator."""
    return AccountCreated.model_validate(
        {
            "id": account.id,
            "email": account.email,
            "role": account.role,
            "name": account.name,
            "activated": account.activated_at is not None,
            "activation_mail_sent": mail_sent,
            "recovery_code": recovery_code,
        }
    )


def public_key_view(account: Account) -> PublicKey:
    return PublicKey.model_validate(
        {
            "account_id": account.id,
            "role": account.role,
            "name": account.name,
            "public_key": b64e(account.public_key),
        }
    )


async def public_key_by_id(session: AsyncSession, account_id: uuid.UUID) -> PublicKey:
    """Only active accounts: an account registered but never activated answers like an
    unknown id, so the id in a registration answer tells nobody whether it is real."""
    account = await repository.get_account(session, account_id)
    if account is None or account.disabled or account.activated_at is None:
        raise NotFound("No such account.", slug="account-not-found")
    return public_key_view(account)


# -- administration ------------------------------------------------------------------


def admin_view(runtime: Runtime, account: Account) -> AdminAccount:
    return AdminAccount.model_validate(
        {
            "id": account.id,
            "email": account.email,
            "role": account.role,
            "name": account.name,
            "activated": account.activated_at is not None,
            "disabled": account.disabled,
            "created_at": account.created_at,
            "settings": account_settings(account),
            "quota_bytes": quota_bytes(runtime, account),
            "quota_is_default": account.quota_bytes is None,
            "default_code_validity_days": account.default_code_validity_days,
        }
    )


async def get_account_or_404(session: AsyncSession, account_id: uuid.UUID) -> Account:
    account = await repository.get_account(session, account_id)
    if account is None:
        raise NotFound("No such account.", slug="account-not-found")
    return account


async def get_account_by_email_or_404(session: AsyncSession, email: str) -> Account:
    account = await repository.get_account_by_email(session, normalise_email(email))
    if account is None:
        raise NotFound("No account with this e-mail address.", slug="account-not-found")
    return account


async def admin_update(
    session: AsyncSession, runtime: Runtime, account: Account, update: AdminAccountUpdate
) -> None:
    changes = update.model_dump(exclude_unset=True)
    now = utcnow()
    role = changes.get("role") or account.role
    if changes.get("default_code_validity_days") is not None and role != "institution":
        raise BadRequest("Only institutions have a default code validity.", slug="institution-only")
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
            await repository.revoke_account_sessions(session, account.id, now)
            await end_key_sessions(runtime, account.id)
    if "quota_bytes" in changes:
        account.quota_bytes = changes["quota_bytes"]
    if changes.get("default_code_validity_days") is not None:
        account.default_code_validity_days = changes["default_code_validity_days"]
    account.updated_at = now
    await session.flush()
    log.info("account_updated_by_admin", account_id=str(account.id), fields=sorted(changes))


# -- internal ------------------------------------------------------------------------


def internal_view(runtime: Runtime, account: Account) -> InternalAccount:
    return InternalAccount.model_validate(
        {
            "id": account.id,
            "email": account.email,
            "role": account.role,
            "public_key": b64e(account.public_key),
            "quota_bytes": quota_bytes(runtime, account),
            "deletion_mode": account.deletion_mode,
            "active": account.activated_at is not None and not account.disabled,
            "notifications": account.notifications,
            "accept_shares": account.accept_shares,
            "name": account.name,
            "default_code_validity_days": (
                (account.default_code_validity_days or runtime.settings.default_code_validity_days)
                if account.role == "institution"
                else None
            ),
        }
    )


async def notify(
    session: AsyncSession, runtime: Runtime, *, account_id: uuid.UUID, subject: str, text: str
) -> bool:
    """Mail the account if it wants notifications; True when a mail went out."""
    account = await get_account_or_404(session, account_id)
    if not account.notifications or account.activated_at is None or account.disabled:
        return False
    message = build_message(
        sender=runtime.settings.mail_from, to=account.email, subject=subject, text=text
    )
    try:
        await runtime.mailer.send(message)
    except MailError as exc:
        log.error("notification_mail_failed", account_id=str(account_id), error=str(exc))
        raise BadGateway("The mail server did not take the message.", slug="mail-failed") from exc
    return True
