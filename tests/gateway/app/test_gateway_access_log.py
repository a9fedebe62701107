"""Access codes never reach a log: the shared access log redacts code-bearing paths."""

from __future__ import annotations

import httpx
import pytest
import structlog
from fastapi import APIRouter

from hds_common.app import create_service_app
from hds_common.observability import redact_path

CODE = "QRST-VWXY-Z234"


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        (f"/c/{CODE}", "/c/[redacted]"),
        (f"/C/{CODE}", "/C/[redacted]"),
        (f"/dlx/v1/token/{CODE}", "/dlx/v1/token/[redacted]"),
        (f"/dlx/v1/tokentfa/{CODE}", "/dlx/v1/tokentfa/[redacted]"),
        (f"/dlx/v1/token/{CODE}/../x", "/dlx/v1/token/[redacted]"),
        ("/", "/"),
        ("/dlx/v1/list", "/dlx/v1/list"),
        ("/dlx/v1/download/item-1", "/dlx/v1/download/item-1"),
        ("/storage/v1/studies/s-1", "/storage/v1/studies/s-1"),
        ("/codes/v1/codes/c-1/reactivate", "/codes/v1/codes/c-1/reactivate"),
    ],
)
def test_redact_path(path: str, logged: str) -> None:
    assert redact_path(path) == logged


async def test_access_log_of_gateway_and_service_never_holds_a_code(
    gateway: httpx.AsyncClient,
) -> None:
    dlx = {"X-DICOM-LINK-EXCHANGE": "1"}
    with structlog.testing.capture_logs() as logs:
        await gateway.get(f"/c/{CODE}")
        await gateway.get(f"/c/{CODE}", headers=dlx)
        await gateway.get("/", params={"code": CODE})
        await gateway.get("/", params={"code": CODE}, headers=dlx)
        await gateway.get(f"/dlx/v1/token/{CODE}")
        await gateway.post(f"/dlx/v1/tokentfa/{CODE}", json={})
    requests = [entry for entry in logs if entry["event"] == "request"]
    # Both the gateway's and the DLX stand-in's lines (same process) were captured.
    assert len(requests) >= 10
    assert CODE not in repr(logs)
    assert CODE.replace("-", "") not in repr(logs)
    paths = {entry["path"] for entry in requests}
    assert paths == {
        "/c/[redacted]",
        "/",
        "/dlx/v1/token/[redacted]",
        "/dlx/v1/tokentfa/[redacted]",
    }


async def test_crash_log_never_holds_a_code() -> None:
    router = APIRouter()

    @router.get("/dlx/v1/token/{value}")
    async def crash(value: str) -> None:
        raise RuntimeError(f"boom ({len(value)} characters)")

    app = create_service_app(service="dlx", title="crash", description="", routers=[router])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://dlx") as client:
        with structlog.testing.capture_logs() as logs:
            response = await client.get(f"/dlx/v1/token/{CODE}")
    assert response.status_code == 500
    assert [entry["path"] for entry in logs] == ["/dlx/v1/token/[redacted]"] * len(logs)
    assert any(entry["event"] == "unhandled_exception" for entry in logs)
    assert CODE not in repr(logs)
