"""No code ever reaches a log line of the service (PostgreSQL)."""

from __future__ import annotations

import logging

import pytest
import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from hds_codes.values import normalise_code
from tests.codes.support import Harness

pytestmark = pytest.mark.postgres


async def test_codes_and_birth_dates_are_never_logged(
    codes: Harness, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        issued = await codes.issue(birth_date="19581122")
        headers = codes.auth(issued.institution)
        await codes.validate(issued.code, "19581122")
        await codes.validate(issued.code, "19581123")
        await codes.client.post(
            "/codes/v1/import",
            json={"code": issued.code, "birth_date": "19581122"},
            headers=codes.auth(codes.account(role="patient")),
        )
        await codes.client.get("/codes/v1/codes", params={"code": issued.code}, headers=headers)
        for name in ("qr.svg", "qr.png", "sheet.pdf"):
            response = await codes.client.get(
                f"/codes/v1/codes/{issued.id}/{name}", params={"code": issued.code}, headers=headers
            )
            assert response.status_code == 200
        await codes.client.post(f"/codes/v1/codes/{issued.id}/reactivate", headers=headers)
        # An unhandled error path logs too: a storage outage during import.
        codes.router.register("storage.internal", _broken_app())
        response = await codes.client.post(
            "/codes/v1/import",
            json={"code": issued.code, "birth_date": "19581122"},
            headers=codes.auth(codes.account(role="patient")),
        )
        assert response.status_code == 502

    # The capture worked: the access log lines of the requests are there.
    assert sum(1 for event in events if event.get("event") == "request") >= 9
    service_records = [
        record.getMessage()
        for record in caplog.records
        # The test's own client logs the URLs it calls (with ?code=); that is not the service.
        if "http://codes.internal" not in record.getMessage()
    ]
    captured = capsys.readouterr()
    text = "\n".join([repr(events), *service_records, captured.out, captured.err])
    normal = normalise_code(issued.code)
    for secret in (issued.code, normal, normal.lower(), "19581122"):
        assert secret not in text


def _broken_app() -> FastAPI:
    app = FastAPI(title="failing storage stand-in")

    @app.get("/internal/v1/key-sessions/{session_id}")
    async def live(session_id: str) -> JSONResponse:
        # Sessions still check out: the failure is the import itself.
        return JSONResponse({"session_id": session_id})

    @app.post("/internal/v1/packages/{package_id}/slots")
    async def slots(package_id: str) -> JSONResponse:
        return JSONResponse({"detail": f"disk on fire under {package_id}"}, status_code=500)

    return app
