"""Validation of a code + birth date: the package key on success, lockout on failures.

Rules that shape this module:

* An unknown code and a wrong birth date must look the same in status, body and time.
  Both run Argon2id (unknown codes with a stable dummy salt) and the same database
  statements; both answer 401 ``invalid-code``. A locked or revoked code answers the
  same way, also after running Argon2id, so a lock does not reveal that a code exists.
* Failures are counted before the answer is checked and refunded on success, so
  concurrent guesses cannot exceed the limit. The counters are committed in their own
  short transactions: they must survive the 401 that follows (the request session would
  roll back) and must not hold a database lock while Argon2id runs.
* A client over its failure allowance is slowed, not refused: its attempts wait (a
  growing delay, before Argon2id and before the code's attempt is reserved) and are then
  answered as usual. Many people share one address (a hospital's NAT); a refusal would
  lock all of them out of their right answers because of one guesser. The per-code
  lockout is what bounds the guesses on one code, from any number of addresses.
* A slot made under an older Argon2id cost is re-made under the current one at its first
  right answer, so raising the cost reaches issued codes too.

Nothing here logs the code, the birth date or a key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
from dataclasses import dataclass, field

from hds_codes.clients.storage import PackageSession
from hds_codes.errors import CodeExpired, InvalidCode
from hds_codes.runtime import Runtime
from hds_codes.slots import slot_aad, slot_secret
from hds_codes.validation import repository
from hds_codes.validation.lockout import client_delay, lock_duration
from hds_codes.values import CODE_LENGTH, InvalidCodeFormat, normalise_code
from hds_common.crypto import Argon2Params, generate_salt

__all__ = ["Validated", "start_dlx_session", "validate_code"]

# A well-formed wrapped key that no KEK opens; unknown codes "try" it like a real slot.
_DUMMY_WRAPPED = bytes((1,)) + bytes(12) + bytes(48)
_PRUNE_PROBABILITY = 0.01


@dataclass(frozen=True)
class Validated:
    code_id: str
    package_id: str
    # Held in memory for this request only: handed to storage sealed (an import's key
    # slot, a DLX token's key session), never answered, logged or stored here.
    package_key: bytes = field(repr=False)
    # Until when a session may hold the key: the grant lifetime, never past the code.
    session_expires_at: dt.datetime
    code_expires_at: dt.datetime


@dataclass(frozen=True)
class _Attempt:
    code_id: str | None
    package_id: str
    evaluate: bool
    salt: bytes
    params: Argon2Params
    wrapped: bytes
    lock_count: int
    expires_at: dt.datetime | None


async def validate_code(
    runtime: Runtime, *, code: str, birth_date: dt.date, client: str
) -> Validated:
    """The package key for ``code`` + ``birth_date``, or 401 ``invalid-code`` / 403
    ``code-expired``."""
    settings = runtime.settings
    now = runtime.now()
    try:
        normal = normalise_code(code)
    except InvalidCodeFormat:
        # Treated as an unknown code (the internal contract knows only 401 here): an ASCII
        # stand-in that no real code equals, since "U" is not in the alphabet.
        digest = hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
        normal = "U" + digest[: CODE_LENGTH - 1].upper()
    lookup_hash = runtime.lookup.code_hash(normal)
    client_hash = runtime.lookup.client_hash(client)

    failures = await _count_client_attempt(runtime, client_hash, now)
    delay = client_delay(settings, failures)
    if delay > 0:
        runtime.metrics.delayed.inc()
        await asyncio.sleep(delay)
        now = runtime.now()

    attempt = await _begin_attempt(runtime, lookup_hash, now)
    secret = slot_secret(normal, birth_date)
    key = await runtime.deriver.unwrap(
        secret,
        attempt.salt,
        attempt.params,
        attempt.wrapped,
        slot_aad(attempt.code_id or "", attempt.package_id),
    )
    if key is None or not attempt.evaluate or attempt.code_id is None:
        await _record_failure(runtime, attempt, now)
        # Unknown codes count as "rejected" like wrong answers: not even the metrics
        # tell the two apart.
        runtime.metrics.validations.labels("rejected" if attempt.evaluate else "locked").inc()
        raise InvalidCode()

    await _record_right_answer(runtime, attempt.code_id, client_hash, now)
    if attempt.params != settings.argon2:
        await _remake_slot(runtime, attempt, secret, key)
    assert attempt.expires_at is not None
    if attempt.expires_at <= now:
        runtime.metrics.validations.labels("expired").inc()
        raise CodeExpired()

    session_expires_at = min(
        now + dt.timedelta(seconds=settings.grant_ttl_seconds), attempt.expires_at
    )
    runtime.metrics.validations.labels("success").inc()
    return Validated(
        code_id=attempt.code_id,
        package_id=attempt.package_id,
        package_key=key,
        session_expires_at=session_expires_at.replace(microsecond=0),
        code_expires_at=attempt.expires_at,
    )


async def start_dlx_session(runtime: Runtime, validated: Validated) -> PackageSession:
    """A package key session for a DLX token of ``validated``.

    Revocation and expiry commit the change, then end the code's sessions; this starts the
    session, then reads the code again and ends the session itself if the code changed
    meanwhile. Whichever runs second sees the other, so no session outlives its code."""
    started = await runtime.storage.start_package_session(
        validated.package_id,
        code_id=validated.code_id,
        package_key=validated.package_key,
        expires_at=int(validated.session_expires_at.timestamp()),
    )
    async with runtime.session_maker() as session:
        row = await repository.get_by_id(session, validated.code_id)
        ended = row is None or row.revoked_at is not None or row.expires_at <= runtime.now()
    if ended:
        await runtime.storage.end_code_sessions(validated.package_id, code_id=validated.code_id)
        raise InvalidCode()
    return started


async def _count_client_attempt(runtime: Runtime, client_hash: str, now: dt.datetime) -> int:
    """Count the attempt against its client (refunded on a right answer); the client's
    failures in the window, this attempt included."""
    window_start = now - dt.timedelta(seconds=runtime.settings.client_window_seconds)
    async with runtime.session_maker.begin() as session:
        failures = await repository.count_client_attempt(
            session, client_hash, now=now, window_start=window_start
        )
        if random.random() < _PRUNE_PROBABILITY:
            await repository.prune_client_throttles(session, window_start=window_start)
    return failures


async def _begin_attempt(runtime: Runtime, lookup_hash: str, now: dt.datetime) -> _Attempt:
    settings = runtime.settings
    async with runtime.session_maker.begin() as session:
        row = await repository.get_by_lookup_hash(session, lookup_hash)
        usable = row is not None and row.revoked_at is None
        # The same UPDATE runs for unknown codes (matching nothing) to keep the timing alike.
        reserved = await repository.reserve_attempt(
            session,
            row.id if row is not None and usable else "",
            max_failures=settings.code_max_failures,
            now=now,
        )
        if row is None or not usable:
            return _Attempt(
                code_id=None,
                package_id="",
                evaluate=True,
                salt=runtime.lookup.dummy_salt(lookup_hash),
                params=settings.argon2,
                wrapped=_DUMMY_WRAPPED,
                lock_count=0,
                expires_at=None,
            )
        return _Attempt(
            code_id=row.id,
            package_id=row.package_id,
            evaluate=reserved,
            salt=row.kdf_salt,
            params=Argon2Params(row.kdf_time_cost, row.kdf_memory_kib, row.kdf_parallelism),
            wrapped=row.wrapped_key,
            lock_count=row.lock_count,
            expires_at=row.expires_at,
        )


async def _record_failure(runtime: Runtime, attempt: _Attempt, now: dt.datetime) -> None:
    settings = runtime.settings
    duration = lock_duration(
        settings.code_lock_seconds, settings.code_lock_max_seconds, attempt.lock_count
    )
    async with runtime.session_maker.begin() as session:
        # For unknown codes and attempts that were not evaluated this matches nothing.
        await repository.lock_if_exhausted(
            session,
            attempt.code_id if attempt.code_id is not None and attempt.evaluate else "",
            max_failures=settings.code_max_failures,
            seen_lock_count=attempt.lock_count,
            locked_until=now + duration,
        )


async def _record_right_answer(
    runtime: Runtime, code_id: str, client_hash: str, now: dt.datetime
) -> None:
    async with runtime.session_maker.begin() as session:
        await repository.record_right_answer(session, code_id, now=now)
        await repository.refund_client_attempt(session, client_hash)


async def _remake_slot(runtime: Runtime, attempt: _Attempt, secret: bytes, key: bytes) -> None:
    """Wrap the key again under the current Argon2id cost and a fresh salt. Guarded by the
    old salt, so of concurrent right answers one replaces the slot and the rest change
    nothing (the key is the same either way)."""
    assert attempt.code_id is not None
    params = runtime.settings.argon2
    salt = generate_salt()
    wrapped = await runtime.deriver.wrap(
        secret, salt, params, key, slot_aad(attempt.code_id, attempt.package_id)
    )
    async with runtime.session_maker.begin() as session:
        await repository.replace_slot(
            session,
            attempt.code_id,
            seen_salt=attempt.salt,
            salt=salt,
            params=params,
            wrapped_key=wrapped,
        )
