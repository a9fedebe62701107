"""Every service builds, starts its lifespan on the embedded default, answers health
checks and publishes an OpenAPI document."""

from __future__ import annotations

import importlib
from pathlib import Path

import httpx
import pytest

from hds_common.crypto import b64e, generate_private_key, public_key_to_bytes
from hds_common.testing.asgi import running

SERVICES = ("auth", "codes", "storage", "dlx", "gateway")


@pytest.mark.parametrize("service", SERVICES)
async def test_service_starts_and_publishes_openapi(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    monkeypatch.setenv("HDS_INTERNAL_SECRET", "boot-test-secret")
    grant_key = generate_private_key()
    monkeypatch.setenv("HDS_GRANT_PUBLIC_KEY", b64e(public_key_to_bytes(grant_key.public_key())))
    main = importlib.import_module(f"hds_{service}.main")
    config = importlib.import_module(f"hds_{service}.config")
    app = main.create_app(config.Settings())
    async with running(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as client:
            health = await client.get("/healthz")
            openapi = await client.get("/openapi.json")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert openapi.status_code == 200
    assert openapi.json()["info"]["title"].startswith("HDS")
