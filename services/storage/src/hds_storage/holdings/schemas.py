"""Request and response bodies of the holdings."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from hds_storage.schemas import (
    PatientPublic,
)


class InstancePublic(BaseModel):
    id: str = Field(description="Object id: GET /storage/v1/objects/{id}")
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    instance_number: int | None
    size: int
    crc32: int
    sha256: str


class SeriesPublic(BaseModel):
    id: str
    series_instance_uid: str
    modality: str
    number: int | None
    description: str
    instances: list[InstancePublic]


class StudyPublic(BaseModel):
    id: str = Field(description="Item id of the study (DLX dataItem id)")
    package_id: str
    study_instance_uid: str
    patient: PatientPublic
    date: dt.date | None
    description: str
    accession_number: str
    modalities: list[str]
    series_count: int
    instance_count: int
    size: int
    added_at: dt.datetime


class StudyDetail(StudyPublic):
    series: list[SeriesPublic]


class DocumentPublic(BaseModel):
    id: str = Field(description="Item id and object id of the document")
    package_id: str
    patient: PatientPublic
    title: str
    date: dt.date | None
    mime_type: str = "application/pdf"
    size: int
    sha256: str
    added_at: dt.datetime


class PatientHoldings(PatientPublic):
    study_ids: list[str]
    document_ids: list[str]


class UsagePublic(BaseModel):
    used_bytes: int
    reserved_bytes: int
    quota_bytes: int | None = Field(description="null: no quota (institutions by default)")
    deletion_mode: Literal["automatic", "manual"]


class AccountUsage(BaseModel):
    """What auth's ``/me`` shows of storage: the bytes the account uses (its quota is
    auth's own)."""

    used_bytes: int
