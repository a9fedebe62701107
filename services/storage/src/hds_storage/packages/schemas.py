"""Request and response bodies of the packages."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hds_storage.schemas import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    PackageState,
    PatientPublic,
    UtcTimestamp,
)


class PackagePublic(BaseModel):
    id: str
    state: PackageState
    institution_id: str
    created_at: UtcTimestamp
    last_activity_at: UtcTimestamp
    completed_at: UtcTimestamp | None
    patient: PatientPublic | None = None
    studies: int = 0
    documents: int = 0
    size: int = Field(0, description="Plaintext bytes of all objects")


class PackageKeyOut(BaseModel):
    package_key: str = Field(description="base64url package key")


class SlotImport(BaseModel):
    account_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    sealed_package_key: str = Field(
        min_length=1,
        max_length=4096,
        description="The package key sealed to this service (kind package, the package id)",
    )


class SlotImported(BaseModel):
    package_id: str
    studies: int = Field(description="Studies of the package now in the account's holdings")
    documents: int = Field(description="Documents of the package now in the account's holdings")
    bytes: int = Field(description="Plaintext bytes newly counted against the account's quota")


class PackageStatus(BaseModel):
    id: str
    state: PackageState
    institution_id: str
    retry_after: int = Field(description="Seconds until asking again makes sense (0 if complete)")
