"""What the bodies of several features share: ids, kinds, the patient."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, Field

# Ids in paths are looked up in the database (PostgreSQL text cannot hold NUL) and sent
# to the identity service in URL paths: no control characters.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
ID_MAX_LENGTH = 64

ItemKind = Literal["study", "document"]
ShareKind = Literal["study", "document", "package"]
PackageState = Literal["open", "complete"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def as_utc(value: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; everything is stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# A time read from the database, answered in UTC whichever backend stored it.
UtcTimestamp = Annotated[dt.datetime, AfterValidator(as_utc)]


def from_row(schema: type[ModelT], row: object, **values: Any) -> ModelT:
    """``schema`` from the row's attributes of its field names; ``values`` for the fields
    the row does not hold, or holds otherwise. Fields neither gives keep their defaults."""
    columns = {
        name: getattr(row, name)
        for name in schema.model_fields
        if name not in values and hasattr(row, name)
    }
    return schema.model_validate({**columns, **values})


class PatientPublic(BaseModel):
    id: str = Field(description="Opaque id of the patient record (one per package)")
    package_id: str
    patient_id: str = Field(description="PatientID (0010,0020) as sent by the institution")
    name: str = Field(description="PatientName (0010,0010), DICOM person name format")
    birth_date: dt.date | None
    sex: str
