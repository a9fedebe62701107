"""list: the DLX token, the item mapping, 503 while the package is incomplete."""

from __future__ import annotations

from typing import Any

import httpx

from hds_common.testing.asgi import ServiceRouterTransport, running
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import ACCOUNT_AUDIENCE, DLX_AUDIENCE
from hds_dlx.clients.schemas import StorageItem
from hds_dlx.downloads.service import data_item
from hds_dlx.main import create_app
from tests.dlx.support import World, bearer, dlx_settings


def _no_nulls(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and _no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_nulls(v) for v in value)
    return True


async def test_list_maps_storage_items_to_data_items(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get("/dlx/v1/list", headers=await bearer(client, world.code))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert list(body) == ["dataItem"]
    assert _no_nulls(body)
    items = {item["id"]: item for item in body["dataItem"]}
    assert items == {
        world.ct.item_id: {
            "id": world.ct.item_id,
            "mimeType": "application/zip",
            "description": "CT Thorax",
            "studyInstanceUID": world.ct.study.study_instance_uid,
            "date": "2024-04-19",
            "modalities": "CT",
            "patientsName": "Mustermann^Max",
            "patientsBirthdate": "1970-01-01",
            "patientsSex": "M",
            "fileCount": 3,
        },
        # A study without a study date has no "date" (never null, never "").
        world.mr.item_id: {
            "id": world.mr.item_id,
            "mimeType": "application/zip",
            "description": "MRT Knie",
            "studyInstanceUID": world.mr.study.study_instance_uid,
            "modalities": "MR",
            "patientsName": "Mustermann^Max",
            "patientsBirthdate": "1970-01-01",
            "patientsSex": "M",
            "fileCount": 2,
        },
        world.report.item_id: {
            "id": world.report.item_id,
            "mimeType": "application/pdf",
            "description": "Befund CT Thorax",
            "date": "2024-04-20",
            "patientsName": "Mustermann^Max",
            "patientsBirthdate": "1970-01-01",
            "patientsSex": "M",
            "fileCount": 1,
        },
    }


async def test_list_shows_only_the_package_of_the_code(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(
        "/dlx/v1/list", headers=await bearer(client, world.other_code, "19800202")
    )
    assert response.status_code == 200
    descriptions = sorted(item["description"] for item in response.json()["dataItem"])
    assert descriptions == ["Befund Hand", "Röntgen Hand"]


def test_data_item_mapping_of_unusual_storage_values() -> None:
    study = StorageItem(
        id="s1",
        kind="study",
        mime_type="application/octet-stream",
        description=None,
        date="2024",  # partial DICOM date: not a date
        modalities=["CT", "PT", ""],
        patient_birth_date="19700230",  # impossible date
        patient_sex="",
    )
    mapped = data_item(study)
    assert mapped is not None
    assert mapped.model_dump(by_alias=True, exclude_none=True) == {
        "id": "s1",
        "mimeType": "application/zip",
        "description": "",
        "modalities": "CT\\PT",
    }
    assert data_item(StorageItem(id="x", kind="series")) is None


async def test_list_without_a_token_is_401_with_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer"}):
        response = await client.get("/dlx/v1/list", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"


async def test_list_rejects_tokens_that_are_not_dlx_tokens(
    client: httpx.AsyncClient, world: World
) -> None:
    package = world.package
    rejected = {
        # A valid account token (same signing key, even with grant and pkg) is not enough.
        "account": world.issuer.mint(
            "account-1",
            audience=ACCOUNT_AUDIENCE,
            grant=package.grant,
            pkg=package.id,
            roles=["patient"],
        ),
        "foreign key": TestIssuer(kid=world.issuer.kid).mint(
            "code-id-1", audience=DLX_AUDIENCE, grant=package.grant, pkg=package.id
        ),
        "other issuer": TestIssuer(issuer="someone-else", kid="test-key-1").mint(
            "code-id-1", audience=DLX_AUDIENCE, grant=package.grant, pkg=package.id
        ),
        "no package": world.issuer.mint("code-id-1", audience=DLX_AUDIENCE, grant=package.grant),
        "no grant": world.issuer.mint("code-id-1", audience=DLX_AUDIENCE, pkg=package.id),
        "garbage": "not.a.jwt",
    }
    for name, token in rejected.items():
        response = await client.get("/dlx/v1/list", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"].startswith("Bearer"), name
    # The same package opens with a proper DLX token.
    accepted = await client.get(
        "/dlx/v1/list", headers={"Authorization": f"Bearer {world.dlx_token(package)}"}
    )
    assert accepted.status_code == 200


async def test_expired_dlx_token_is_401_and_a_fresh_tokentfa_works(
    client: httpx.AsyncClient, world: World
) -> None:
    expired = world.dlx_token(world.package, ttl=-120)  # beyond the 30 s clock skew
    response = await client.get("/dlx/v1/list", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]

    fresh = await client.get("/dlx/v1/list", headers=await bearer(client, world.code))
    assert fresh.status_code == 200
    assert len(fresh.json()["dataItem"]) == 3


async def test_list_is_503_come_back_later_while_the_package_is_incomplete(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await bearer(client, world.open_code)
    response = await client.get("/dlx/v1/list", headers=headers)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "30"
    assert response.json() == {"timeOutInSeconds": 30}

    world.open_package.state = "complete"
    assert (await client.get("/dlx/v1/list", headers=headers)).status_code == 200


async def test_a_deleted_package_makes_the_token_useless(
    client: httpx.AsyncClient, world: World
) -> None:
    headers = await bearer(client, world.code)
    del world.storage.packages[world.package.id]
    response = await client.get("/dlx/v1/list", headers=headers)
    assert response.status_code == 401
    assert response.json()["type"] == "urn:hds:problem:dlx-session-invalid"


async def test_list_when_storage_is_unreachable_is_a_502_problem(world: World) -> None:
    transport = ServiceRouterTransport()  # codes and auth answer, storage does not
    transport.register("codes.internal", world.codes.app)
    transport.register("auth.internal", world.auth.app)
    app = create_app(dlx_settings(), transport=transport)
    async with (
        running(world.codes.app, world.auth.app, app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/dlx/v1/list", headers=await bearer(client, world.code))
        ready = await client.get("/readyz")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:hds:problem:storage-unavailable"
    assert ready.status_code == 503
    assert ready.json()["checks"]["codes"] == "ok"
    assert ready.json()["checks"]["storage"].startswith("failed")


async def test_readiness_asks_the_neighbours(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"codes": "ok", "auth": "ok", "storage": "ok"}
