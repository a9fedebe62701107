"""The storage service as the identity service uses it: the account's usage, and the key
sessions.

At login and at every refresh the user's private key is handed to storage, sealed to it,
for one access token's lifetime; the token carries only the grant storage answers (the
session id and its secret, sealed to storage). Logout, password reset and change,
refresh-token reuse and disablement end the sessions here, so neither a captured token
nor anything the operator holds opens the key afterwards.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from hds_auth.errors import StorageUnavailable
from hds_common.crypto import seal_session_key

__all__ = ["KeySessions", "StartedKeySession", "end_key_sessions", "fetch_usage"]

log = structlog.get_logger("hds.auth.storage")

_PATH = "/internal/v1/key-sessions"


@dataclass(frozen=True)
class StartedKeySession:
    session_id: str
    grant: str


class KeySessions:
    def __init__(self, client: httpx.AsyncClient, grant_public_key: bytes) -> None:
        self._client = client
        self._grant_public_key = grant_public_key

    async def start(
        self, *, account_id: uuid.UUID, family_id: uuid.UUID, private_key: bytes, expires_at: int
    ) -> StartedKeySession:
        subject = str(account_id)
        body = {
            "kind": "user",
            "subject": subject,
            "tag": str(family_id),
            "sealed_key": seal_session_key(
                self._grant_public_key, private_key, kind="user", subject=subject
            ),
            "expires_at": expires_at,
        }
        answer = await self._post(_PATH, body, expect=201)
        try:
            return StartedKeySession(
                session_id=str(answer["session_id"]), grant=str(answer["grant"])
            )
        except (KeyError, TypeError):
            raise StorageUnavailable() from None

    async def end(
        self,
        account_id: uuid.UUID,
        *,
        family_id: uuid.UUID | None = None,
        keep_family: uuid.UUID | None = None,
    ) -> None:
        """End the account's key sessions: one family's, all but one family's, or all."""
        body: dict[str, Any] = {"kind": "user", "subject": str(account_id)}
        if family_id is not None:
            body["tag"] = str(family_id)
        if keep_family is not None:
            body["keep_tag"] = str(keep_family)
        await self._post(f"{_PATH}/end", body, expect=200)

    async def _post(self, path: str, body: dict[str, Any], *, expect: int) -> dict[str, Any]:
        try:
            response = await self._client.post(path, json=body)
        except httpx.HTTPError as exc:
            log.warning("key_session_call_failed", path=path, error=type(exc).__name__)
            raise StorageUnavailable() from None
        if response.status_code != expect:
            log.warning("key_session_call_refused", path=path, status=response.status_code)
            raise StorageUnavailable()
        try:
            answer = response.json()
        except ValueError:
            raise StorageUnavailable() from None
        if not isinstance(answer, dict):
            raise StorageUnavailable()
        return answer


async def end_key_sessions(
    key_sessions: KeySessions | None,
    account_id: uuid.UUID,
    *,
    family_id: uuid.UUID | None = None,
    keep_family: uuid.UUID | None = None,
) -> None:
    """End the account's key sessions at storage (503 when it cannot be reached, which
    rolls the request back: nothing is reported ended that still opens a key). Without a
    grant key there are none."""
    if key_sessions is not None:
        await key_sessions.end(account_id, family_id=family_id, keep_family=keep_family)


async def fetch_usage(
    storage: httpx.AsyncClient, account_id: uuid.UUID, *, timeout: float
) -> int | None:
    """Bytes the account uses, from the storage service; None when it cannot tell.

    Only ``used_bytes`` of storage's answer is read: the quota is this service's to say
    (storage answers usage without asking it back)."""
    try:
        response = await storage.get(f"/internal/v1/usage/{account_id}", timeout=timeout)
        response.raise_for_status()
        used = response.json()["used_bytes"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("storage_usage_unavailable", account_id=str(account_id), error=repr(exc))
        return None
    return used if isinstance(used, int) and not isinstance(used, bool) else None
