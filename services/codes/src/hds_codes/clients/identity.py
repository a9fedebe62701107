"""Client of the identity service: the accounts codes needs to know about."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from hds_codes.clients.upstream import parse_answer, send, upstream_problem
from hds_codes.errors import AccountUnknown

__all__ = ["AccountInfo", "IdentityClient"]

_SERVICE = "identity"


class AccountInfo(BaseModel):
    """What codes needs of an account (the identity service sends more)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str
    role: str
    # Display name of the institution, printed on carrier sheets.
    name: str | None = Field(default=None, validation_alias=AliasChoices("name", "display_name"))
    # The institution's default validity of new codes.
    code_validity_days: int | None = Field(
        default=None,
        validation_alias=AliasChoices("default_code_validity_days", "code_validity_days"),
    )


class IdentityClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def account(self, account_id: str) -> AccountInfo:
        response = await send(
            self._client, _SERVICE, "GET", f"/internal/v1/accounts/{quote(account_id, safe='')}"
        )
        if response.status_code == 404:
            raise AccountUnknown("the account no longer exists")
        if response.status_code != 200:
            raise upstream_problem(response, _SERVICE)
        return parse_answer(AccountInfo, response, _SERVICE)
