"""The service as a whole: OpenAPI, health, metrics, start-up checks (PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from hds_codes.config import Settings
from hds_codes.main import create_app
from hds_common.testing.asgi import running
from tests.codes.support import Harness, Neighbourhood, make_settings

pytestmark = pytest.mark.postgres


async def test_openapi_lists_every_route(codes: Harness) -> None:
    response = await codes.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        ("/codes/v1/codes", "post"),
        ("/codes/v1/codes", "get"),
        ("/codes/v1/codes/{code_id}", "get"),
        ("/codes/v1/codes/{code_id}/reactivate", "post"),
        ("/codes/v1/codes/{code_id}/expire", "post"),
        ("/codes/v1/codes/{code_id}/revoke", "post"),
        ("/codes/v1/codes/{code_id}/qr.svg", "get"),
        ("/codes/v1/codes/{code_id}/qr.png", "get"),
        ("/codes/v1/codes/{code_id}/sheet.pdf", "get"),
        ("/codes/v1/import", "post"),
        ("/internal/v1/validate", "post"),
    }
    assert expected <= {(path, method) for path, methods in paths.items() for method in methods}
    assert (
        "image/png"
        in paths["/codes/v1/codes/{code_id}/qr.png"]["get"]["responses"]["200"]["content"]
    )
    schemes = response.json()["components"]["securitySchemes"]
    assert any(scheme.get("scheme") == "bearer" for scheme in schemes.values())


async def test_health_readiness_and_metrics(codes: Harness) -> None:
    assert (await codes.client.get("/healthz")).json() == {"status": "ok"}
    ready = await codes.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
    issued = await codes.issue()
    await codes.validate(issued.code, issued.birth_date)
    metrics = (await codes.client.get("/metrics")).text
    assert 'hds_codes_validations_total{outcome="success"} 1.0' in metrics
    assert "hds_codes_issued_total 1.0" in metrics


@pytest.mark.parametrize(
    ("suite_change", "message"),
    [
        ({"grant_public_key": ""}, "HDS_GRANT_PUBLIC_KEY"),
        ({"grant_public_key": "not-a-key"}, "HDS_GRANT_PUBLIC_KEY"),
        ({"internal_secret": SecretStr("")}, "HDS_INTERNAL_SECRET"),
    ],
)
async def test_start_up_refuses_missing_suite_settings(
    postgres_url: str,
    tmp_path: Path,
    hood: Neighbourhood,
    suite_change: dict[str, object],
    message: str,
) -> None:
    settings = make_settings(postgres_url, tmp_path / "lookup.key", hood)
    settings = settings.model_copy(update={"suite": settings.suite.model_copy(update=suite_change)})
    app = create_app(settings)
    with pytest.raises(RuntimeError, match=message):
        async with running(app):
            pass


def test_settings_reject_inconsistent_values() -> None:
    with pytest.raises(ValidationError):
        Settings(validity_min_days=30, validity_default_days=20, validity_max_days=90)
    with pytest.raises(ValidationError):
        Settings(argon2_memory_kib=8, argon2_parallelism=4)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDS_CODES_ARGON2_TIME_COST", "3")
    monkeypatch.setenv("HDS_CODES_ARGON2_MEMORY_KIB", "65536")
    monkeypatch.setenv("HDS_CODES_LOOKUP_SECRET_FILE", "/run/secrets/codes-lookup")
    settings = Settings()
    assert (settings.argon2.time_cost, settings.argon2.memory_cost_kib) == (3, 65536)
    assert settings.lookup_secret_file == Path("/run/secrets/codes-lookup")
    assert Settings.model_fields["lookup_secret_file"].default == Path("var/keys/codes-lookup.key")
