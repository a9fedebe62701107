"""Rules of the institutions' codes: issue, find, expire, reactivate, revoke.

Services only ``flush()``; the request session commits. (Validation keeps its own
transactions, see :mod:`hds_codes.validation.service`.)
"""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hds_codes.codes import repository
from hds_codes.codes.repository import CodeFilter
from hds_codes.codes.schemas import CodeCreate
from hds_codes.errors import (
    BirthDateInvalid,
    CodeFormatInvalid,
    CodeNotFound,
    CodeRevoked,
    GrantRequired,
    ValidityOutOfRange,
)
from hds_codes.models import AccessCode, CodeState, slot_columns
from hds_codes.runtime import Runtime
from hds_codes.slots import slot_aad, slot_secret
from hds_codes.values import (
    InvalidBirthDate,
    InvalidCodeFormat,
    format_code,
    generate_code,
    normalise_code,
    parse_birth_date,
)
from hds_common.crypto import generate_salt
from hds_common.errors import ProblemError, ServiceUnavailable
from hds_common.tokens import TokenClaims

__all__ = [
    "IssuedCode",
    "artifact_link",
    "code_state",
    "expire_code",
    "get_code",
    "issue_code",
    "portal_link",
    "reactivate_code",
    "require_birth_date",
    "require_code",
    "revoke_code",
    "search_codes",
    "verify_code_for",
]

_GENERATION_ATTEMPTS = 5

log = structlog.get_logger("hds.codes")


@dataclass(frozen=True)
class IssuedCode:
    row: AccessCode
    code: str  # normal form; shown once, never stored


def require_birth_date(text: str, *, today: dt.date) -> dt.date:
    try:
        return parse_birth_date(text, today=today)
    except InvalidBirthDate as exc:
        raise BirthDateInvalid(str(exc)) from None


def require_code(text: str) -> str:
    try:
        return normalise_code(text)
    except InvalidCodeFormat as exc:
        raise CodeFormatInvalid(str(exc)) from None


def portal_link(runtime: Runtime, code: str) -> str:
    return f"{runtime.settings.suite.public_base_url.rstrip('/')}/c/{format_code(code)}"


def artifact_link(runtime: Runtime, code_id: str, name: str, code: str) -> str:
    base = runtime.settings.suite.public_base_url.rstrip("/")
    return f"{base}/codes/v1/codes/{quote(code_id)}/{name}?code={format_code(code)}"


def code_state(row: AccessCode, now: dt.datetime) -> CodeState:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at <= now:
        return "expired"
    if row.locked_until is not None and row.locked_until > now:
        return "locked"
    return "active"


async def _validity_days(runtime: Runtime, institution_id: str, requested: int | None) -> int:
    settings = runtime.settings
    low, high = settings.validity_min_days, settings.validity_max_days
    if requested is None:
        account = await runtime.identity.account(institution_id)
        configured = account.code_validity_days or settings.validity_default_days
        # The identity service checks the range too; clamp rather than fail on drift.
        return min(max(configured, low), high)
    if not low <= requested <= high:
        raise ValidityOutOfRange(
            f"validity_days must be between {low} and {high}",
            minimum=low,
            maximum=high,
        )
    return requested


async def issue_code(
    session: AsyncSession, runtime: Runtime, *, institution: TokenClaims, request: CodeCreate
) -> IssuedCode:
    """Create a code key slot for the package under a fresh code."""
    if not institution.grant:
        raise GrantRequired("the token carries no key grant")
    birth_date = require_birth_date(request.birth_date, today=runtime.now().date())
    institution_id, package_id = institution.sub, request.package_id
    days = await _validity_days(runtime, institution_id, request.validity_days)
    package_key = await runtime.storage.package_key(package_id, user_grant=institution.grant)
    code_id = str(uuid.uuid4())
    params = runtime.settings.argon2
    for _ in range(_GENERATION_ATTEMPTS):
        code = generate_code()
        salt = generate_salt()
        # Argon2id before the first query, so no transaction stays open while it runs.
        wrapped = await runtime.deriver.wrap(
            slot_secret(code, birth_date), salt, params, package_key, slot_aad(code_id, package_id)
        )
        lookup_hash = runtime.lookup.code_hash(code)
        if not await repository.lookup_hash_exists(session, lookup_hash):
            break
    else:  # 60 random bits colliding five times in a row means a broken generator
        raise ServiceUnavailable("could not generate a unique access code", retry_after=1)
    now = runtime.now()
    row = AccessCode(
        id=code_id,
        institution_id=institution_id,
        package_id=package_id,
        lookup_hash=lookup_hash,
        **slot_columns(salt, params, wrapped),
        validity_days=days,
        expires_at=now + dt.timedelta(days=days),
        created_at=now,
        updated_at=now,
    )
    repository.add(session, row)
    await session.flush()
    await report_validity(session, runtime, package_id, extending=True)
    runtime.metrics.issued.inc()
    return IssuedCode(row=row, code=code)


async def report_validity(
    session: AsyncSession, runtime: Runtime, package_id: str, *, extending: bool
) -> None:
    """Tell storage until when the package's codes are valid (its retention hint), inside
    the transaction that changed them. A code that extends validity must not exist without
    storage knowing (its package could be retired under it), so that failure fails the
    request; storage asks again before it retires anything, so a lost report of a
    shortening (expire, revoke) only keeps the package longer."""
    valid_until = await repository.package_codes_end(session, package_id)
    if valid_until is None:
        return
    try:
        await runtime.storage.keep_until(package_id, valid_until)
    except ProblemError as exc:
        if extending:
            raise
        log.warning("retention_report_failed", package_id=package_id, status=exc.status)


async def get_code(session: AsyncSession, *, institution_id: str, code_id: str) -> AccessCode:
    """The institution's own code; anybody else's is reported as missing."""
    row = await repository.get_for_institution(session, code_id, institution_id)
    if row is None:
        raise CodeNotFound("no such access code")
    return row


async def verify_code_for(
    session: AsyncSession, runtime: Runtime, *, institution_id: str, code_id: str, code: str
) -> AccessCode:
    """The row of ``code_id`` if ``code`` is its code (for QR codes and sheets, which need
    the code the service does not keep)."""
    row = await get_code(session, institution_id=institution_id, code_id=code_id)
    try:
        normal = normalise_code(code)
    except InvalidCodeFormat:
        raise CodeNotFound("no such access code") from None
    if not hmac.compare_digest(row.lookup_hash, runtime.lookup.code_hash(normal)):
        raise CodeNotFound("no such access code")
    return row


async def search_codes(
    session: AsyncSession,
    runtime: Runtime,
    *,
    criteria: CodeFilter,
    limit: int,
    offset: int,
) -> tuple[Sequence[AccessCode], int]:
    return await repository.search(session, criteria, now=runtime.now(), limit=limit, offset=offset)


def _refuse_revoked(row: AccessCode) -> None:
    if row.revoked_at is not None:
        raise CodeRevoked("the access code has been revoked")


async def reactivate_code(
    session: AsyncSession,
    runtime: Runtime,
    *,
    institution_id: str,
    code_id: str,
    validity_days: int | None,
) -> AccessCode:
    """Valid again for ``validity_days`` from now, and unlocked (the institution vouches
    for the person who got locked out)."""
    row = await get_code(session, institution_id=institution_id, code_id=code_id)
    _refuse_revoked(row)
    days = await _validity_days(runtime, institution_id, validity_days)
    now = runtime.now()
    row.validity_days = days
    row.expires_at = now + dt.timedelta(days=days)
    row.reactivated_at = now
    row.failed_attempts = 0
    row.lock_count = 0
    row.locked_until = None
    row.updated_at = now
    await session.flush()
    await report_validity(session, runtime, row.package_id, extending=True)
    return row


async def expire_code(
    session: AsyncSession, runtime: Runtime, *, institution_id: str, code_id: str
) -> AccessCode:
    """Expire now (it can be reactivated later)."""
    row = await get_code(session, institution_id=institution_id, code_id=code_id)
    _refuse_revoked(row)
    now = runtime.now()
    changed = row.expires_at > now
    if changed:
        row.expires_at = now
    await _stopped(session, runtime, row, changed=changed, now=now)
    return row


async def _stopped(
    session: AsyncSession, runtime: Runtime, row: AccessCode, *, changed: bool, now: dt.datetime
) -> None:
    """After an expiry or a revocation: store it and report the shorter validity if
    ``changed``, then end the DLX sessions of the code, which no longer opens its package.
    Committed first, so a validation running meanwhile sees the change when it re-reads
    the code (:func:`hds_codes.validation.service.start_dlx_session`)."""
    if changed:
        row.updated_at = now
        await session.flush()
        await report_validity(session, runtime, row.package_id, extending=False)
    package_id, code_id = row.package_id, row.id
    await session.commit()
    await runtime.storage.end_code_sessions(package_id, code_id=code_id)


async def revoke_code(
    session: AsyncSession, runtime: Runtime, *, institution_id: str, code_id: str
) -> AccessCode:
    """Revoke for good (idempotent)."""
    row = await get_code(session, institution_id=institution_id, code_id=code_id)
    now = runtime.now()
    changed = row.revoked_at is None
    if changed:
        row.revoked_at = now
    await _stopped(session, runtime, row, changed=changed, now=now)
    return row
