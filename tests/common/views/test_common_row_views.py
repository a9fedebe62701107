"""view_of: a response body read from a row's attributes, and the fields given."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import BaseModel, ValidationError

from hds_common.row_views import view_of


@dataclasses.dataclass
class Row:
    id: int
    email: str
    activated_at: str | None


class View(BaseModel):
    id: int
    email: str
    activated: bool


def test_fields_come_from_the_row_unless_given() -> None:
    row = Row(id=7, email="a@example.org", activated_at=None)
    assert view_of(View, row, activated=row.activated_at is not None) == View(
        id=7, email="a@example.org", activated=False
    )
    assert view_of(View, row, email="other@example.org", activated=True).email == (
        "other@example.org"
    )


def test_a_required_field_neither_on_the_row_nor_given_is_an_error() -> None:
    with pytest.raises(ValidationError, match="activated"):
        view_of(View, Row(id=1, email="a@example.org", activated_at=None))


class ViewWithDefault(BaseModel):
    id: int
    note: str = "none"


def test_a_field_neither_on_the_row_nor_given_keeps_its_default() -> None:
    row = Row(id=1, email="a@example.org", activated_at=None)
    assert view_of(ViewWithDefault, row) == ViewWithDefault(id=1, note="none")


def test_the_schema_still_validates() -> None:
    with pytest.raises(ValidationError):
        view_of(View, Row(id=1, email="a@example.org", activated_at=None), activated="maybe")
