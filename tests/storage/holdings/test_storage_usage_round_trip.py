"""``GET /internal/v1/usage/{account}`` is the identity service asking (its
``/auth/v1/me``): storage answers the used bytes from its own records and asks the
identity service nothing back (counted at the identity stand-in, which records every
request storage makes to it)."""

from __future__ import annotations

import uuid

from hds_common.testing.dicom import make_study
from tests.storage.support import StorageEnv


async def test_usage_for_the_identity_service_makes_no_call_back(env: StorageEnv) -> None:
    institution = env.institution()
    patient = env.account()
    package_id = await env.publish(institution, make_study(2))
    package_key = await env.package_key(institution, package_id)
    imported = await env.import_package(patient, package_id, package_key)
    assert imported.status_code == 200, imported.text
    used = imported.json()["bytes"]
    assert used > 0
    env.identity.requests.clear()

    response = await env.client.get(f"/internal/v1/usage/{patient.id}", headers=env.service())

    assert response.status_code == 200, response.text
    assert response.json() == {"used_bytes": used}
    assert env.identity.requests == []
    # The same number the account sees for itself.
    assert await env.usage(patient) == used


async def test_usage_of_an_account_storage_has_no_record_of(env: StorageEnv) -> None:
    env.identity.requests.clear()
    unknown = str(uuid.uuid4())

    response = await env.client.get(f"/internal/v1/usage/{unknown}", headers=env.service())

    assert response.status_code == 200, response.text
    assert response.json() == {"used_bytes": 0}
    refused = await env.client.get("/internal/v1/usage/not-a-uuid", headers=env.service())
    assert refused.status_code == 404
    assert refused.json()["type"] == "urn:hds:problem:account-not-found"
    assert env.identity.requests == []
