"""Regression tests of bad input the property-based tests (test_storage_fuzz.py) found
answered with 5xx, or passed on to the identity service as a path: each is now a 4xx
problem and changes no stored data."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI

from hds_common.errors import PROBLEM_CONTENT_TYPE
from hds_common.testing.asgi import ServiceRouterTransport
from hds_common.testing.dicom import make_study
from tests.storage.support import StorageEnv
from tests.storage.support_identity import IDENTITY_HOST

ROUTES = [
    ("GET", "/storage/v1/packages/{id}", "institution"),
    ("POST", "/storage/v1/packages/{id}/instances", "institution"),
    ("POST", "/storage/v1/packages/{id}/documents", "institution"),
    ("POST", "/storage/v1/packages/{id}/complete", "institution"),
    ("GET", "/storage/v1/studies/{id}", "patient"),
    ("DELETE", "/storage/v1/studies/{id}", "patient"),
    ("GET", "/storage/v1/studies/{id}/archive", "patient"),
    ("DELETE", "/storage/v1/documents/{id}", "patient"),
    ("GET", "/storage/v1/objects/{id}", "patient"),
    ("GET", "/internal/v1/packages/{id}/key", "service"),
    ("POST", "/internal/v1/packages/{id}/slots", "service"),
    ("GET", "/internal/v1/packages/{id}/status", "service"),
    ("GET", "/internal/v1/packages/{id}/items", "service"),
    ("GET", "/internal/v1/packages/{id}/archive", "service"),
    ("GET", "/internal/v1/packages/{id}/documents/{id}", "service"),
    ("GET", "/internal/v1/usage/{id}", "service"),
]


@pytest.mark.parametrize("bad_id", ["a%00b", "a%03b", "%7F"])
async def test_ids_with_control_characters_are_refused(env: StorageEnv, bad_id: str) -> None:
    """PostgreSQL cannot even compare text with NUL: these were 500s."""
    headers = {
        "institution": env.auth(env.institution()),
        "patient": env.auth(env.account()),
        "service": env.service(),
    }
    before = await env.dump_tables()
    for method, route, caller in ROUTES:
        response = await env.client.request(
            method, route.format(id=bad_id), headers=headers[caller], json={}
        )
        assert response.status_code == 422, (method, route, response.text)
        assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
        assert response.json()["type"] == "urn:hds:problem:validation-error"
    assert await env.dump_tables() == before


async def _published(env: StorageEnv) -> tuple[str, bytes]:
    institution = env.institution()
    package_id = await env.publish(institution, make_study(1))
    return package_id, await env.package_key(institution, package_id)


async def test_an_account_id_is_one_path_segment_for_the_identity_service(
    env: StorageEnv,
) -> None:
    """``../accounts/<id>`` used to reach the account ``<id>`` at the identity service
    (httpx resolves dot segments): the import stored holdings for an account id that
    does not exist."""
    package_id, key = await _published(env)
    patient = env.account()
    before = await env.dump_tables()
    response = await env.client.post(
        f"/internal/v1/packages/{package_id}/slots",
        headers=env.service(),
        json={
            "account_id": f"../accounts/{patient.id}",
            "sealed_package_key": env.sealed_package_key(package_id, key),
        },
    )
    assert response.status_code == 404, response.text
    assert response.json()["type"] == "urn:hds:problem:account-not-found"
    assert await env.dump_tables() == before


async def test_an_account_id_the_identity_service_refuses_is_unknown(env: StorageEnv) -> None:
    """The identity service answers 422 for an account id that is no UUID; that is an
    unknown account (404), not an unavailable identity service (503)."""
    package_id, key = await _published(env)
    identity = FastAPI()

    @identity.get("/internal/v1/accounts/{account_id}")
    async def account(account_id: uuid.UUID) -> dict[str, str]:
        return {"id": str(account_id)}  # never reached: no id of this test is a UUID

    transport: ServiceRouterTransport = env.app.state.transport
    transport.register(IDENTITY_HOST, identity)
    before = await env.dump_tables()
    usage = await env.client.get("/internal/v1/usage/not-a-uuid", headers=env.service())
    assert usage.status_code == 404, usage.text
    assert usage.json()["type"] == "urn:hds:problem:account-not-found"
    imported = await env.client.post(
        f"/internal/v1/packages/{package_id}/slots",
        headers=env.service(),
        json={
            "account_id": "not-a-uuid",
            "sealed_package_key": env.sealed_package_key(package_id, key),
        },
    )
    assert imported.status_code == 404, imported.text
    assert await env.dump_tables() == before
