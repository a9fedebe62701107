"""Retention: an institution's published package goes only after every code of it
expired plus the retention period, as the codes service confirms right before; then with
its blobs, a log entry and a notice. Others' copies stay.

``CodesAnswers`` plays the codes service's internal validity route (the real route and
the wiring are covered by tests/codes and tests/e2e/test_e2e_nothing_lost.py)."""

from __future__ import annotations

import datetime as dt

from structlog.testing import capture_logs

from hds_common.db import utcnow
from hds_common.testing.dicom import make_study
from hds_storage.clients.codes import CodesUnavailable
from hds_storage.maintenance.retention import retire_expired_packages
from tests.storage.support import StorageEnv
from tests.storage.support_identity import TestAccount

RETENTION_DAYS = 30.0


class CodesAnswers:
    """What the codes service answers per package; ``down`` makes it unreachable."""

    def __init__(self) -> None:
        self.valid_until: dict[str, dt.datetime | None] = {}
        self.down = False
        self.asked: list[str] = []

    async def __call__(self, package_id: str) -> dt.datetime | None:
        self.asked.append(package_id)
        if self.down:
            raise CodesUnavailable("connection refused")
        return self.valid_until.get(package_id)


async def _report(
    env: StorageEnv, codes: CodesAnswers, package_id: str, valid_until: dt.datetime
) -> int:
    codes.valid_until[package_id] = valid_until
    response = await env.client.put(
        f"/internal/v1/packages/{package_id}/retention",
        json={"codes_valid_until": valid_until.isoformat()},
        headers=env.service(),
    )
    return response.status_code


async def _sweep(
    env: StorageEnv, codes: CodesAnswers, now: dt.datetime, *, among: set[str]
) -> list[str]:
    """The packages of ``among`` one sweep retired (the database is shared by the tests of
    a run: others' packages may go too)."""
    state = env.app.state.runtime
    retired = await retire_expired_packages(
        state.session_maker,
        state.store,
        state.identity,
        codes,
        retention_days=RETENTION_DAYS,
        now=now,
    )
    return sorted(r.package_id for r in retired if r.package_id in among)


async def _package_ids(env: StorageEnv, institution: TestAccount) -> list[str]:
    response = await env.client.get("/storage/v1/packages", headers=env.auth(institution))
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()]


async def test_a_package_is_kept_while_a_code_is_valid_plus_the_period(env: StorageEnv) -> None:
    codes = CodesAnswers()
    institution = env.institution()
    package_id = await env.publish(institution, make_study(2, patient_id="RT-1"))
    mine = {package_id}
    now = utcnow()
    expiry = now + dt.timedelta(days=60)
    assert await _report(env, codes, package_id, expiry) == 204

    assert await _sweep(env, codes, now, among=mine) == []
    assert (
        await _sweep(env, codes, expiry + dt.timedelta(days=RETENTION_DAYS - 1), among=mine) == []
    )
    assert package_id in await _package_ids(env, institution)
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 2

    with capture_logs() as logs:
        retired = await _sweep(
            env, codes, expiry + dt.timedelta(days=RETENTION_DAYS + 1), among=mine
        )

    assert retired == [package_id]
    assert package_id not in await _package_ids(env, institution)
    assert await env.blob_keys(f"objects/{package_id}/") == []
    assert await env.usage(institution) == 0
    entries = [e for e in logs if e["event"] == "package_retired"]
    assert [e["package_id"] for e in entries] == [package_id]
    (note,) = [n for n in env.identity.notes if n["account_id"] == institution.id]
    assert package_id in note["text"]
    assert "RT-1" not in note["text"]
    # No code can be issued or reactivated for it any more; a second sweep does nothing.
    assert await _report(env, codes, package_id, utcnow() + dt.timedelta(days=30)) == 404
    assert (
        await _sweep(env, codes, expiry + dt.timedelta(days=RETENTION_DAYS + 2), among=mine) == []
    )


async def test_the_codes_service_is_asked_again_before_anything_goes(env: StorageEnv) -> None:
    codes = CodesAnswers()
    institution = env.institution()
    package_id = await env.publish(institution, make_study(1, patient_id="RT-5"))
    mine = {package_id}
    long_ago = utcnow() - dt.timedelta(days=RETENTION_DAYS + 10)
    assert await _report(env, codes, package_id, long_ago) == 204
    # The report says "expired long ago"; meanwhile the code was reactivated.
    codes.valid_until[package_id] = utcnow() + dt.timedelta(days=30)
    assert await _sweep(env, codes, utcnow(), among=mine) == []
    assert package_id in codes.asked
    # The codes service cannot be reached: nothing goes either.
    codes.valid_until[package_id] = long_ago
    codes.down = True
    assert await _sweep(env, codes, utcnow() + dt.timedelta(days=90), among=mine) == []
    assert package_id in await _package_ids(env, institution)
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 1
    codes.down = False
    assert await _sweep(env, codes, utcnow() + dt.timedelta(days=90), among=mine) == [package_id]


async def test_retention_keeps_the_copies_of_those_who_imported(env: StorageEnv) -> None:
    codes = CodesAnswers()
    institution = env.institution()
    files = make_study(2, patient_id="RT-2")
    package_id = await env.publish(institution, files)
    mine = {package_id}
    key = await env.package_key(institution, package_id)
    patient = env.account()
    assert (await env.import_package(patient, package_id, key)).status_code == 200
    expiry = utcnow() - dt.timedelta(days=RETENTION_DAYS + 1)
    assert await _report(env, codes, package_id, expiry) == 204

    assert await _sweep(env, codes, utcnow(), among=mine) == [package_id]

    assert package_id not in await _package_ids(env, institution)
    held = (await env.client.get("/storage/v1/studies", headers=env.auth(patient))).json()
    assert [s["package_id"] for s in held] == [package_id]
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 2
    archive = await env.client.get(
        f"/storage/v1/studies/{held[0]['id']}/archive", headers=env.auth(patient)
    )
    assert archive.status_code == 200
    # The package row stays for the patient's copy, retired: no new codes.
    refused = await env.client.put(
        f"/internal/v1/packages/{package_id}/retention",
        json={"codes_valid_until": (utcnow() + dt.timedelta(days=30)).isoformat()},
        headers=env.service(),
    )
    assert refused.status_code == 409
    assert refused.json()["type"] == "urn:hds:problem:package-retired"


async def test_a_package_without_codes_counts_from_its_completion(env: StorageEnv) -> None:
    codes = CodesAnswers()
    institution = env.institution()
    package_id = await env.publish(institution, make_study(1, patient_id="RT-3"))
    open_id = await env.publish(institution, make_study(1, patient_id="RT-4"), complete=False)
    mine = {package_id, open_id}
    now = utcnow()
    assert await _sweep(env, codes, now + dt.timedelta(days=RETENTION_DAYS - 1), among=mine) == []
    retired = await _sweep(env, codes, now + dt.timedelta(days=RETENTION_DAYS + 1), among=mine)
    # A package still being published is never retired.
    assert retired == [package_id]
    assert open_id in await _package_ids(env, institution)


async def test_bad_retention_reports_are_problems(env: StorageEnv) -> None:
    institution = env.institution()
    package_id = await env.publish(institution, make_study(1))
    url = f"/internal/v1/packages/{package_id}/retention"
    for body in ({}, {"codes_valid_until": "soon"}, {"codes_valid_until": "2030-01-01T00:00:00"}):
        response = await env.client.put(url, json=body, headers=env.service())
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    unauthenticated = await env.client.put(
        url, json={"codes_valid_until": utcnow().isoformat()}, headers=env.auth(institution)
    )
    assert unauthenticated.status_code == 401
