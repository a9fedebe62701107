"""Request and response bodies of the ingest."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class InstanceStored(BaseModel):
    id: str
    sop_instance_uid: str
    study_id: str
    series_id: str
    size: int
    sha256: str
    status: Literal["created", "existing"] = Field(
        description="existing: the same SOP Instance UID with the same bytes was stored before"
    )


class InstancesUploaded(BaseModel):
    package_id: str
    instances: list[InstanceStored]


class DocumentStored(BaseModel):
    id: str
    size: int
    sha256: str
    status: Literal["created", "existing"]


class DocumentsUploaded(BaseModel):
    package_id: str
    documents: list[DocumentStored]
