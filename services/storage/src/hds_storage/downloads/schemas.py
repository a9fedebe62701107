"""Request and response bodies of the downloads."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from hds_storage.schemas import (
    ItemKind,
)


class DataItem(BaseModel):
    """One DLX ``dataItem`` (a study as IHE PDI ZIP or a PDF document)."""

    id: str
    kind: ItemKind
    mime_type: str
    description: str
    study_instance_uid: str | None
    date: dt.date | None
    modalities: str | None = Field(description="Backslash separated, like ModalitiesInStudy")
    patient_name: str
    patient_birth_date: dt.date | None
    patient_sex: str
    file_count: int
    size: int
