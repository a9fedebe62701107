"""What the bodies of several features share: ids, kinds, the patient."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

# Ids in paths are looked up in the database (PostgreSQL text cannot hold NUL) and sent
# to the identity service in URL paths: no control characters.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
ID_MAX_LENGTH = 64

ItemKind = Literal["study", "document"]
ShareKind = Literal["study", "document", "package"]
PackageState = Literal["open", "complete"]


def as_utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# A time read from the database, answered in UTC whichever backend stored it.
UtcTimestamp = Annotated[dt.datetime, AfterValidator(as_utc)]


class PatientPublic(BaseModel):
    id: str = Field(description="Opaque id of the patient record (one per package)")
    package_id: str
    patient_id: str = Field(description="PatientID (0010,0020) as sent by the institution")
    name: str = Field(description="PatientName (0010,0010), DICOM person name format")
    birth_date: dt.date | None
    sex: str
