"""The DLX wire format of list and the downloads' comebackLater (DIN/TS 19455; see
hds_dlx.schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from hds_dlx.schemas import DlxModel

__all__ = ["ComebackLaterResponse", "DataItem", "DataItems"]


class DataItem(DlxModel):
    """One study (an IHE PDI ZIP) or one report (a PDF) the access code unlocks."""

    id: str
    mime_type: str = Field(alias="mimeType")
    description: str
    study_instance_uid: str | SkipJsonSchema[None] = Field(default=None, alias="studyInstanceUID")
    date: dt.date | SkipJsonSchema[None] = None
    modalities: str | SkipJsonSchema[None] = None
    patients_name: str | SkipJsonSchema[None] = Field(default=None, alias="patientsName")
    patients_birthdate: dt.date | SkipJsonSchema[None] = Field(
        default=None, alias="patientsBirthdate"
    )
    patients_sex: str | SkipJsonSchema[None] = Field(default=None, alias="patientsSex")
    file_count: int | SkipJsonSchema[None] = Field(default=None, alias="fileCount")


class DataItems(DlxModel):
    """List of data items."""

    data_item: list[DataItem] = Field(default_factory=list, alias="dataItem")


class ComebackLaterResponse(DlxModel):
    """The download is not possible yet; try again after ``timeOutInSeconds``."""

    time_out_in_seconds: Annotated[int, Field(ge=0)] | SkipJsonSchema[None] = Field(
        default=None, alias="timeOutInSeconds"
    )
