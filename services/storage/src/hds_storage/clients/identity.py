"""What storage needs to know about an account, asked from the identity service.

``GET {auth}/internal/v1/accounts/{id}`` (or ``?email=``) gives the quota, the deletion
mode, the account's X25519 public key and whether it can receive shares. Storage keeps no
copy: quota and deletion mode can change at any time, and an upload or import without an
answer is refused with 503 (``identity-unavailable``) rather than guessed against a
default. Notification mails go out through ``POST {auth}/internal/v1/notifications``.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError

from hds_common.crypto import X25519_KEY_SIZE, b64d
from hds_storage.errors import AccountNotFound, IdentityUnavailable

__all__ = ["AccountInfo", "IdentityClient"]

log = structlog.get_logger("hds.storage.identity")


class AccountInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    role: str = ""
    public_key: str | None = None
    quota_bytes: int | None  # None: no quota (institutions, unless one is configured)
    deletion_mode: Literal["automatic", "manual"] = "manual"
    # Shares go only to activated, enabled accounts that accept them; unsaid means no.
    active: bool = False
    accept_shares: bool = False

    def public_key_bytes(self) -> bytes | None:
        if not self.public_key:
            return None
        try:
            key = b64d(self.public_key)
        except ValueError:
            return None
        return key if len(key) == X25519_KEY_SIZE else None


class IdentityClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def account(self, account_id: str) -> AccountInfo:
        return await self._lookup(f"/internal/v1/accounts/{quote(account_id, safe='')}")

    async def account_by_email(self, email: str) -> AccountInfo:
        return await self._lookup("/internal/v1/accounts", params={"email": email})

    async def _lookup(self, path: str, params: dict[str, str] | None = None) -> AccountInfo:
        try:
            response = await self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise IdentityUnavailable(type(exc).__name__) from None
        # 422: the identity service refuses the id's or address's form (ids are UUIDs).
        if response.status_code in (404, 422):
            raise AccountNotFound("unknown account")
        if response.status_code != 200:
            raise IdentityUnavailable(f"status {response.status_code}")
        try:
            return AccountInfo.model_validate_json(response.content)
        except ValidationError:
            raise IdentityUnavailable("malformed account record") from None

    async def notify(self, account_id: str, *, subject: str, text: str) -> None:
        """Mail the account (if it wants notifications). Best effort: a mail that cannot
        go out is logged, never an error of the request that caused it."""
        try:
            response = await self._client.post(
                "/internal/v1/notifications",
                json={"account_id": account_id, "subject": subject, "text": text},
            )
        except httpx.HTTPError as exc:
            log.warning("notification_failed", account_id=account_id, error=type(exc).__name__)
            return
        if response.status_code != 202:
            log.warning("notification_failed", account_id=account_id, status=response.status_code)
