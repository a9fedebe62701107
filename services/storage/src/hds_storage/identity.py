"""What storage needs to know about an account, asked from the identity service.

``GET {auth}/internal/v1/accounts/{id}`` gives the quota, the deletion mode and the
account's X25519 public key. Storage keeps no copy: quota and deletion mode can change
at any time, and an upload or import without an answer is refused with 503
(``identity-unavailable``) rather than guessed against a default.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from hds_common.crypto import X25519_KEY_SIZE, b64d
from hds_common.errors import NotFound
from hds_storage.errors import identity_unavailable

__all__ = ["AccountInfo", "IdentityClient"]


class AccountInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    role: str = ""
    public_key: str | None = None
    quota_bytes: int
    deletion_mode: Literal["automatic", "manual"] = "manual"

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
        try:
            response = await self._client.get(f"/internal/v1/accounts/{quote(account_id, safe='')}")
        except httpx.HTTPError as exc:
            raise identity_unavailable(type(exc).__name__) from None
        # 422: the identity service refuses the id's form (account ids are UUIDs).
        if response.status_code in (404, 422):
            raise NotFound("unknown account", slug="account-not-found")
        if response.status_code != 200:
            raise identity_unavailable(f"status {response.status_code}")
        try:
            return AccountInfo.model_validate_json(response.content)
        except ValidationError:
            raise identity_unavailable("malformed account record") from None
