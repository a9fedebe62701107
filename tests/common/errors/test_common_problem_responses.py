"""problem_responses: what a route documents of its error answers in the OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from hds_common.app import create_service_app
from hds_common.errors import (
    PROBLEM_CONTENT_TYPE,
    Conflict,
    InvalidToken,
    MissingToken,
    NotFound,
    ServiceTokenInvalid,
    problem_responses,
)


class ItemExists(Conflict):
    slug = "item-exists"
    title = "Item exists"


class ItemGone(NotFound):
    slug = "item-gone"


def test_statuses_are_grouped_and_each_lists_its_slugs() -> None:
    responses = problem_responses(MissingToken, ItemExists, InvalidToken, ItemGone)
    assert list(responses) == [401, 404, 409]
    assert responses[401]["description"] == (
        "`missing-token`: Authentication required; `invalid-token`: Authentication required"
    )
    assert responses[404]["description"] == "`item-gone`: Not found"
    assert responses[409]["description"] == "`item-exists`: Item exists"


def test_each_status_answers_problem_json_with_an_example_per_slug() -> None:
    responses = problem_responses(MissingToken, InvalidToken)
    content = responses[401]["content"]
    assert list(content) == [PROBLEM_CONTENT_TYPE]
    examples = content[PROBLEM_CONTENT_TYPE]["examples"]
    assert examples == {
        "missing-token": {
            "summary": "Authentication required",
            "value": {
                "type": "urn:hds:problem:missing-token",
                "title": "Authentication required",
                "status": 401,
            },
        },
        "invalid-token": {
            "summary": "Authentication required",
            "value": {
                "type": "urn:hds:problem:invalid-token",
                "title": "Authentication required",
                "status": 401,
            },
        },
    }
    schema = content[PROBLEM_CONTENT_TYPE]["schema"]
    assert schema["required"] == ["type", "title", "status"]


def test_a_class_named_twice_is_listed_once() -> None:
    responses = problem_responses(ServiceTokenInvalid, ServiceTokenInvalid)
    examples = responses[401]["content"][PROBLEM_CONTENT_TYPE]["examples"]
    assert list(examples) == ["service-token-invalid"]


def test_a_route_documents_them_in_its_openapi_document() -> None:
    router = APIRouter()

    @router.get(
        "/items/{name}",
        responses=problem_responses(ItemGone, ItemExists)
        | {200: {"content": {"application/octet-stream": {}}}},
    )
    async def item(name: str) -> dict[str, str]:
        return {"name": name}

    app = create_service_app(service="test", title="test", description="test", routers=[router])
    answers: dict[str, Any] = app.openapi()["paths"]["/items/{name}"]["get"]["responses"]
    assert {"200", "404", "409"} <= set(answers)
    assert "application/octet-stream" in answers["200"]["content"]
    for status, slug in (("404", "item-gone"), ("409", "item-exists")):
        assert list(answers[status]["content"]) == [PROBLEM_CONTENT_TYPE]
        assert list(answers[status]["content"][PROBLEM_CONTENT_TYPE]["examples"]) == [slug]


class ItemLocked(Conflict, slug="item-locked", title="Item locked"):
    """Named in its class statement."""


class ItemMoved(NotFound, slug="item-moved"):
    pass


def test_a_problem_class_named_in_its_class_statement_answers_its_slug_and_title() -> None:
    assert ItemLocked("held by another upload").to_body() == {
        "type": "urn:hds:problem:item-locked",
        "title": "Item locked",
        "status": 409,
        "detail": "held by another upload",
    }
    # The title stays the base's where the class names none, and the bases keep theirs.
    assert ItemMoved().to_body()["title"] == "Not found"
    assert (Conflict.slug, NotFound.slug) == ("conflict", "not-found")
