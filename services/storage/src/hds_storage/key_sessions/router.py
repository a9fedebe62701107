"""Internal routes of the key sessions (service token): start, end, liveness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from hds_common.errors import ServiceTokenInvalid, problem_responses
from hds_storage.deps import CallingServiceDep, RuntimeDep, SessionDep
from hds_storage.errors import (
    KeySessionNotFound,
    PackageNotFound,
    SealedKeyInvalid,
    SessionAlreadyExpired,
    SessionTooLong,
)
from hds_storage.key_sessions import service
from hds_storage.key_sessions.repository import KeySessionRepository
from hds_storage.key_sessions.schemas import (
    SESSION_ID_PATTERN,
    KeySessionLive,
    KeySessionsEnd,
    KeySessionsEnded,
    KeySessionStart,
    KeySessionStarted,
)
from hds_storage.keys import MetaCipher
from hds_storage.packages.service import load_package

router = APIRouter(prefix="/internal/v1/key-sessions", tags=["internal"])

SessionId = Annotated[str, Path(pattern=SESSION_ID_PATTERN)]


@router.post(
    "",
    status_code=201,
    summary="Hold an unlocked key for a session; the grant its token carries",
    responses=problem_responses(
        ServiceTokenInvalid,
        SessionAlreadyExpired,
        SessionTooLong,
        SealedKeyInvalid,
        PackageNotFound,
    ),
)
async def start(
    body: KeySessionStart, _: CallingServiceDep, runtime: RuntimeDep, session: SessionDep
) -> KeySessionStarted:
    started, key = await service.start_session(
        KeySessionRepository(session),
        runtime.grant_key,
        kind=body.kind,
        subject=body.subject,
        tag=body.tag,
        sealed_key=body.sealed_key,
        expires_at=body.expires_at,
        max_seconds=runtime.settings.key_session_max_seconds,
    )
    if body.kind == "package":
        # Only a key that opens the package may stand for it.
        package = await load_package(session, body.subject)
        if not MetaCipher(key, package.id).check(package.id, package.key_check):
            raise PackageNotFound("no such package")
    return KeySessionStarted(
        session_id=started.session_id, grant=started.grant, expires_at=started.expires_at
    )


@router.post(
    "/end",
    summary="End key sessions: logout, reset, revocation, disablement",
    responses=problem_responses(ServiceTokenInvalid),
)
async def end(body: KeySessionsEnd, _: CallingServiceDep, session: SessionDep) -> KeySessionsEnded:
    ended = await service.end_sessions(
        KeySessionRepository(session),
        kind=body.kind,
        subject=body.subject,
        tag=body.tag,
        keep_tag=body.keep_tag,
    )
    return KeySessionsEnded(ended=ended)


@router.get(
    "/{session_id}",
    summary="Whether a key session is live (200) or ended (404)",
    responses=problem_responses(ServiceTokenInvalid, KeySessionNotFound),
)
async def live(session_id: SessionId, _: CallingServiceDep, session: SessionDep) -> KeySessionLive:
    await service.require_live(KeySessionRepository(session), session_id)
    return KeySessionLive(session_id=session_id)


__all__ = ["router"]
