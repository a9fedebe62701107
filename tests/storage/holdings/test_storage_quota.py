"""Quota: default from the identity service, automatic deletion of the oldest whole studies,
507 in manual mode, and no overshoot under concurrent uploads at the boundary."""

from __future__ import annotations

import asyncio

from hds_common.testing.dicom import make_dicom, make_study
from tests.storage.support import StorageEnv


def _fixed_size_dicoms(count: int, *, patient_id: str) -> list[bytes]:
    """Instances of identical size (fixed-length UIDs), so the boundary is exact."""
    files = [
        make_dicom(
            patient_id=patient_id,
            study_uid="2.25.1" + "0" * 36,
            series_uid="2.25.2" + "0" * 36,
            sop_uid=f"2.25.{10**37 + i}",
            rows=64,
            columns=64,
            seed=i,
        ).data
        for i in range(count)
    ]
    assert len({len(f) for f in files}) == 1
    return files


async def test_concurrent_uploads_never_exceed_the_quota(env: StorageEnv) -> None:
    files = _fixed_size_dicoms(20, patient_id="Q-1")
    size = len(files[0])
    quota = 10 * size + size // 2
    institution = env.institution(quota_bytes=quota)
    package_id = await env.create_package(institution)

    responses = await asyncio.gather(
        *(env.upload_raw(institution, package_id, data) for data in files)
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 10 + [507] * 10, [r.text for r in responses if r.status_code >= 500]
    refused = next(r for r in responses if r.status_code == 507)
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:hds:problem:quota-exceeded"
    used = await env.usage(institution)
    assert used == 10 * size <= quota
    assert await env.listed_bytes(institution) == used
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 10
    assert await env.count_rows("upload_batches") == 0


async def test_manual_mode_refuses_what_does_not_fit(env: StorageEnv) -> None:
    first = make_study(2, patient_id="M-1")
    institution = env.institution(quota_bytes=sum(len(f.data) for f in first) + 100)
    await env.publish(institution, first)
    package_id = await env.create_package(institution)

    response = await env.upload(institution, package_id, make_study(2, patient_id="M-2"))

    assert response.status_code == 507
    assert response.json()["deletion_mode"] == "manual"
    assert (
        len((await env.client.get("/storage/v1/studies", headers=env.auth(institution))).json())
        == 1
    )
    assert await env.blob_keys(f"objects/{package_id}/") == []


async def test_an_institution_over_its_quota_is_refused_and_loses_nothing(
    pg_env: StorageEnv,
) -> None:
    """Even in automatic deletion mode: what an institution published is never evicted."""
    env = pg_env
    studies = [make_study(2, patient_id=f"A-{i}", rows=48, columns=48) for i in range(3)]
    size = sum(len(f.data) for f in studies[0])
    institution = env.institution(quota_bytes=2 * size + size // 2, deletion_mode="automatic")
    oldest = await env.publish(institution, studies[0])
    middle = await env.publish(institution, studies[1])
    package_id = await env.create_package(institution)

    refused = await env.upload(institution, package_id, studies[2])

    assert refused.status_code == 507, refused.text
    assert "nothing it published is ever deleted" in refused.json()["detail"]
    listed = (await env.client.get("/storage/v1/studies", headers=env.auth(institution))).json()
    assert [s["package_id"] for s in listed] == [oldest, middle]
    assert len(await env.blob_keys(f"objects/{oldest}/")) == 2
    assert await env.blob_keys(f"objects/{package_id}/") == []
    kept = sum(len(f.data) for f in studies[0] + studies[1])
    assert await env.usage(institution) == kept == await env.listed_bytes(institution)


async def test_an_institution_without_quota_publishes_past_the_patient_default(
    pg_env: StorageEnv,
) -> None:
    env = pg_env
    studies = [make_study(2, patient_id=f"B-{i}", rows=48, columns=48) for i in range(3)]
    institution = env.institution(quota_bytes=None, deletion_mode="automatic")
    packages = [await env.publish(institution, files) for files in studies]
    listed = (await env.client.get("/storage/v1/studies", headers=env.auth(institution))).json()
    assert sorted(s["package_id"] for s in listed) == sorted(packages)
    usage = (await env.client.get("/storage/v1/usage", headers=env.auth(institution))).json()
    assert usage["quota_bytes"] is None
    assert usage["used_bytes"] == sum(len(f.data) for files in studies for f in files)


async def test_automatic_import_evicts_only_from_the_importer(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    first = make_study(2, patient_id="I-1", rows=48, columns=48)
    second = make_study(2, patient_id="I-2", rows=48, columns=48)
    size = sum(len(f.data) for f in first)
    packages = [await env.publish(institution, files) for files in (first, second)]
    keys = [await env.package_key(institution, p) for p in packages]
    patient = env.account(quota_bytes=size + size // 2, deletion_mode="automatic")
    manual = env.account(quota_bytes=size + size // 2)

    assert (await env.import_package(patient, packages[0], keys[0])).status_code == 200
    assert (await env.import_package(patient, packages[1], keys[1])).status_code == 200
    assert (await env.import_package(manual, packages[0], keys[0])).status_code == 200
    refused = await env.import_package(manual, packages[1], keys[1])

    assert refused.status_code == 507
    held = (await env.client.get("/storage/v1/studies", headers=env.auth(patient))).json()
    assert [s["package_id"] for s in held] == [packages[1]]
    # The institution (and the manual account) still hold the first study: it stays.
    assert len(await env.blob_keys(f"objects/{packages[0]}/")) == 2
    assert await env.usage(patient) == sum(len(f.data) for f in second)
    assert await env.usage(manual) == size


async def test_upload_answers_503_while_the_identity_service_is_down(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    env.identity.down = True
    try:
        response = await env.upload(institution, package_id, [make_dicom()])
    finally:
        env.identity.down = False

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:hds:problem:identity-unavailable"
    assert "Retry-After" in response.headers
    assert await env.blob_keys(f"objects/{package_id}/") == []
