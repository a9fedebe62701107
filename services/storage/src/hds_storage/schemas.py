"""What the bodies of several features share: ids, kinds, the patient."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

# Ids in paths are looked up in the database (PostgreSQL text cannot hold NUL) and sent
# to the identity service in URL paths: no control characters.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
ID_MAX_LENGTH = 64

ItemKind = Literal["study", "document"]
ShareKind = Literal["study", "document", "package"]
PackageState = Literal["open", "complete"]


class PatientPublic(BaseModel):
    id: str = Field(description="Opaque id of the patient record (one per package)")
    package_id: str
    patient_id: str = Field(description="PatientID (0010,0020) as sent by the institution")
    name: str = Field(description="PatientName (0010,0010), DICOM person name format")
    birth_date: dt.date | None
    sex: str
