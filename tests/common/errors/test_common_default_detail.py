"""A problem class that names its default detail in its class statement."""

from __future__ import annotations

from hds_common.errors import Conflict, ServiceUnavailable, Unauthorized


class ItemTaken(Conflict, slug="item-taken", detail="This item is taken."):
    pass


class WrongAnswer(Unauthorized, slug="wrong-answer", detail="Wrong answer."):
    pass


class Busy(ServiceUnavailable, slug="busy", detail="try again"):
    pass


def test_the_class_statement_gives_slug_status_and_default_detail() -> None:
    problem = ItemTaken()
    assert problem.to_body() == {
        "type": "urn:hds:problem:item-taken",
        "title": Conflict.title,
        "status": 409,
        "detail": "This item is taken.",
    }
    assert str(problem) == "This item is taken."


def test_a_raise_site_may_say_something_else() -> None:
    assert ItemTaken("Taken by another account.").to_body()["detail"] == (
        "Taken by another account."
    )


def test_the_status_base_still_adds_its_headers() -> None:
    assert WrongAnswer().headers["WWW-Authenticate"].startswith("Bearer")
    assert WrongAnswer().detail == "Wrong answer."
    busy = Busy(retry_after=7)
    assert busy.headers["Retry-After"] == "7"
    assert busy.detail == "try again"
