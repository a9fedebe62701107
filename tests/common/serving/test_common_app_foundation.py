"""The behaviour every service inherits from hds_common.app.create_service_app."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel
from structlog.testing import capture_logs

from hds_common.app import create_service_app
from hds_common.errors import PROBLEM_CONTENT_TYPE, Conflict
from hds_common.request_context import current_request_id


class ItemExists(Conflict):
    """A service's own problem type: its slug, the title and status of its base."""

    slug = "item-exists"


class Item(BaseModel):
    name: str
    size: int


def build_app(*, ready: bool = True) -> httpx.AsyncClient:
    router = APIRouter()

    @router.post("/items")
    async def create_item(item: Item) -> dict[str, str | int]:
        return {"name": item.name, "size": item.size}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    @router.get("/conflict")
    async def conflict() -> None:
        raise ItemExists("already there", item="a")

    @router.get("/whoami")
    async def whoami() -> dict[str, str | None]:
        return {"request_id": current_request_id()}

    async def failing_check() -> None:
        raise ConnectionError("database unreachable")

    async def passing_check() -> None:
        return None

    app = create_service_app(
        service="test",
        title="test",
        description="test",
        routers=[router],
        readiness=lambda _: (
            {"database": passing_check}
            if ready
            else {"database": passing_check, "blobs": failing_check}
        ),
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_unknown_route_is_404_problem() -> None:
    async with build_app() as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["type"] == "urn:hds:problem:not-found"
    assert body["status"] == 404
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_405_problem() -> None:
    async with build_app() as client:
        response = await client.delete("/items")
    assert response.status_code == 405
    assert response.json()["type"] == "urn:hds:problem:method-not-allowed"


@pytest.mark.parametrize(
    ("content", "expected_fragment", "expected_detail"),
    [
        (b'{"name": "x", "size": "big"}', "int_parsing", "size (in the body): "),
        (b'{"size": 1}', "missing", "name (in the body): Field required"),
    ],
)
async def test_invalid_fields_are_422_problem_naming_the_field(
    content: bytes, expected_fragment: str, expected_detail: str
) -> None:
    async with build_app() as client:
        response = await client.post(
            "/items", content=content, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["type"] == "urn:hds:problem:validation-error"
    assert any(expected_fragment in error["type"] for error in body["errors"])
    assert expected_detail in body["detail"]


async def test_malformed_json_is_400_saying_so() -> None:
    async with build_app() as client:
        response = await client.post(
            "/items",
            content=b'{"name": "x", "size": ',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["type"] == "urn:hds:problem:invalid-json"
    assert body["detail"].startswith("The request body is not valid JSON")
    assert "(at character 22)" in body["detail"]
    assert "body." not in body["detail"]


async def test_unhandled_exception_is_500_problem_without_trace_and_logged() -> None:
    async with build_app() as client:
        with capture_logs() as logs:
            response = await client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body = response.json()
    assert body["type"] == "urn:hds:problem:internal-error"
    assert body["request_id"] == "req-123"
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    errors = [entry for entry in logs if entry["event"] == "unhandled_exception"]
    assert errors, logs
    assert isinstance(errors[0]["exc_info"], RuntimeError)


async def test_problem_error_carries_slug_and_extensions() -> None:
    async with build_app() as client:
        response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "type": "urn:hds:problem:item-exists",
        "title": "Conflict",
        "status": 409,
        "detail": "already there",
        "item": "a",
        "request_id": response.headers["x-request-id"],
    }


async def test_request_id_generated_kept_and_sanitised() -> None:
    async with build_app() as client:
        generated = await client.get("/whoami")
        kept = await client.get("/whoami", headers={"X-Request-ID": "abc-123"})
        hostile = await client.get("/whoami", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    assert len(generated.headers["x-request-id"]) == 32
    assert generated.json()["request_id"] == generated.headers["x-request-id"]
    assert kept.headers["x-request-id"] == "abc-123"
    assert kept.json()["request_id"] == "abc-123"
    assert hostile.headers["x-request-id"] != "a b\tc" + "x" * 200
    assert len(hostile.headers["x-request-id"]) == 32


async def test_health_readiness_and_metrics() -> None:
    async with build_app() as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        await client.get("/nowhere")
        metrics = await client.get("/metrics")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok"}}
    assert 'hds_http_requests_total{method="GET",route="/healthz",service="test",status="200"}' in (
        metrics.text
    )
    assert 'route="unmatched",service="test",status="404"' in metrics.text


async def test_readiness_reports_failing_dependency() -> None:
    async with build_app(ready=False) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["blobs"].startswith("failed: ConnectionError")
