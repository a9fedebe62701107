"""Response bodies read from ORM rows.

``view_of(AdminAccount, account, activated=..., quota_bytes=...)``: each field of the
schema is read from the row's attribute of the same name, unless it is given; the schema
validates the whole as usual. One place for what a dict literal per view did, attribute
after attribute. Where every field is the row's, ``Schema.model_validate(row,
from_attributes=True)`` says it without this.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["view_of"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def view_of(schema: type[ModelT], row: object, **given: Any) -> ModelT:
    """``schema`` from ``row``'s attributes, and ``given`` for the fields the row has not
    (or has otherwise: a computed value, a derived one). A field neither gives keeps its
    default (or fails validation as missing)."""
    read = {
        name: getattr(row, name)
        for name in schema.model_fields
        if name not in given and hasattr(row, name)
    }
    return schema.model_validate(read | given)
