"""Request and response bodies of the shares."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hds_storage.schemas import (
    ID_PATTERN,
    ShareKind,
    UtcTimestamp,
)


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: str = Field(
        min_length=1,
        max_length=320,
        pattern=ID_PATTERN,
        description="E-mail address or account id of the account to share with",
    )


class SharePublic(BaseModel):
    id: str
    package_id: str
    item_kind: ShareKind = Field(description="package: an institution's whole delivery")
    item_id: str = Field(description="The study or document; the package id for a package")
    from_account_id: str = Field(description="The sharer")
    to_account_id: str = Field(description="The recipient")
    state: Literal["active", "waiting"] = Field(
        description="waiting: it did not fit the recipient's quota; nothing of the "
        "recipient was deleted for it. It waits until the recipient makes room and "
        "accepts it (POST /shares/{id}/accept, also tried after each deletion), or "
        "declines it (DELETE /shares/{id})"
    )
    size_bytes: int = Field(description="Bytes the share adds to the recipient's holdings")
    created_at: UtcTimestamp


class SharesPublic(BaseModel):
    outgoing: list[SharePublic] = Field(description="Shares the account gave, oldest first")
    incoming: list[SharePublic] = Field(description="Shares the account received")
