"""Key sessions at the storage service: started with a sealed key, opened per request
with the grant's secret, ended by subject and tag, refused once expired, swept."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from hds_common.crypto import generate_package_key, open_grant, seal_session_key
from hds_common.testing.dicom import make_study
from hds_storage.key_sessions.service import LocalKeySessions
from hds_storage.maintenance.collector import run_maintenance
from tests.storage.support import StorageEnv


def _start(env: StorageEnv, subject: str, key: bytes, **fields: object) -> dict[str, object]:
    return {
        "kind": "user",
        "subject": subject,
        "sealed_key": seal_session_key(env.storage_public_key, key, kind="user", subject=subject),
        "expires_at": int(time.time()) + 600,
        **fields,
    }


async def test_a_started_session_opens_the_accounts_routes_until_it_is_ended(
    env: StorageEnv,
) -> None:
    patient = env.account()
    started = await env.client.post(
        "/internal/v1/key-sessions",
        json=_start(env, patient.id, patient.private_key, tag="family-1"),
        headers=env.service(),
    )
    assert started.status_code == 201, started.text
    body = started.json()
    grant = open_grant(env.app.state.runtime.grant_key, body["grant"])
    assert grant.session_id == body["session_id"]
    token = env.issuer.mint(
        patient.id, roles=["patient"], grant=body["grant"], ksid=body["session_id"]
    )
    headers = {"Authorization": f"Bearer {token}"}
    assert (await env.client.get("/storage/v1/studies", headers=headers)).status_code == 200
    live = f"/internal/v1/key-sessions/{body['session_id']}"
    assert (await env.client.get(live, headers=env.service())).status_code == 200

    # Another family's end leaves it alone; its own family's end stops it at once.
    other = {"kind": "user", "subject": patient.id, "tag": "family-2"}
    ended = await env.client.post(
        "/internal/v1/key-sessions/end", json=other, headers=env.service()
    )
    assert ended.json() == {"ended": 0}
    own = {**other, "tag": "family-1"}
    ended = await env.client.post("/internal/v1/key-sessions/end", json=own, headers=env.service())
    assert ended.json() == {"ended": 1}
    refused = await env.client.get("/storage/v1/studies", headers=headers)
    assert refused.status_code == 401
    assert (await env.client.get(live, headers=env.service())).status_code == 404
    assert await _rows_of(env, body["session_id"]) == 0


async def test_expired_sessions_are_refused_and_swept(env: StorageEnv) -> None:
    patient = env.account()
    _, grant = env.sessions.grant("user", patient.id, patient.private_key, ttl=3)
    session_id = open_grant(env.app.state.runtime.grant_key, grant).session_id
    # The grant's own expiry is not what refuses it: the row's is (checked apart).
    liveness = LocalKeySessions(env.app.state.runtime.session_maker)
    assert await liveness.is_live(session_id)
    time.sleep(3.1)
    assert not await liveness.is_live(session_id)
    assert await _rows_of(env, session_id) == 1
    await run_maintenance(
        env.app.state.runtime.session_maker,
        env.store,
        upload_stale_seconds=300,
        package_idle_timeout_seconds=900,
    )
    assert await _rows_of(env, session_id) == 0


async def _rows_of(env: StorageEnv, session_id: str) -> int:
    async with env.engine.connect() as connection:
        result = await connection.execute(
            text("SELECT COUNT(*) FROM key_sessions WHERE id = :id"), {"id": session_id}
        )
        return int(result.scalar_one())


@pytest.mark.parametrize(
    ("change", "slug"),
    [
        ({"expires_at": 1}, "session-expired"),
        ({"expires_at": int(time.time()) + 10**7}, "session-too-long"),
        ({"sealed_key": "AAAA"}, "sealed-key-invalid"),
        ({"kind": "package"}, "sealed-key-invalid"),
        ({"subject": "someone-else"}, "sealed-key-invalid"),
        ({"kind": "nonsense"}, "validation-error"),
        ({"tag": "\u0000"}, "validation-error"),
    ],
)
async def test_bad_starts_are_clear_4xx_problems(
    env: StorageEnv, change: dict[str, object], slug: str
) -> None:
    patient = env.account()
    response = await env.client.post(
        "/internal/v1/key-sessions",
        json={**_start(env, patient.id, patient.private_key), **change},
        headers=env.service(),
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:hds:problem:{slug}"


async def test_a_package_session_needs_the_packages_own_key(env: StorageEnv) -> None:
    institution = env.institution()
    package_id = await env.publish(institution, make_study(1, series=1))
    before = await env.count_rows("key_sessions")  # the institution's own, from its token
    wrong = generate_package_key()
    body = {
        "kind": "package",
        "subject": package_id,
        "sealed_key": seal_session_key(
            env.storage_public_key, wrong, kind="package", subject=package_id
        ),
        "expires_at": int(time.time()) + 600,
    }
    response = await env.client.post("/internal/v1/key-sessions", json=body, headers=env.service())
    assert response.status_code == 404
    assert await env.count_rows("key_sessions") == before
    right = await env.package_key(institution, package_id)
    body["sealed_key"] = seal_session_key(
        env.storage_public_key, right, kind="package", subject=package_id
    )
    response = await env.client.post("/internal/v1/key-sessions", json=body, headers=env.service())
    assert response.status_code == 201, response.text


async def test_the_routes_need_the_service_token(env: StorageEnv) -> None:
    patient = env.account()
    for method, path, body in (
        ("POST", "/internal/v1/key-sessions", _start(env, patient.id, patient.private_key)),
        ("POST", "/internal/v1/key-sessions/end", {"kind": "user", "subject": patient.id}),
        ("GET", "/internal/v1/key-sessions/" + "ab" * 16, None),
    ):
        response = await env.client.request(method, path, json=body)
        assert response.status_code == 401, (path, response.text)
