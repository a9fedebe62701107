"""Bodies of the import of a code into the caller's account."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from hds_codes.codes.schemas import birth_date_field, code_field


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = code_field()
    birth_date: str = birth_date_field()


class ImportResult(BaseModel):
    package_id: str
    code_id: str
    studies: int
    documents: int
    bytes: int
