"""The answers of the neighbouring services (codes, auth, storage), as far as DLX reads them."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict

__all__ = ["CodeValidation", "MintedToken", "PackageStatus", "StorageItem"]


class _Upstream(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CodeValidation(_Upstream):
    """codes ``POST /internal/v1/validate`` → 200."""

    code_id: str
    package_id: str
    grant: str
    key_session_id: str  # the package key session the grant names (the token's ksid)
    expires_at: dt.datetime | None = None  # of the key session
    code_expires_at: dt.datetime | None = None


class MintedToken(_Upstream):
    """auth ``POST /internal/v1/dlx-tokens``."""

    token: str
    expires_in: int


class PackageStatus(_Upstream):
    """storage ``GET /internal/v1/packages/{id}/status``."""

    state: str
    retry_after: int | None = None


class StorageItem(_Upstream):
    """One element of storage ``GET /internal/v1/packages/{id}/items``."""

    id: str
    kind: str
    mime_type: str | None = None
    description: str | None = None
    study_instance_uid: str | None = None
    date: str | None = None
    modalities: str | list[str] | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    file_count: int | None = None
    size: int | None = None
