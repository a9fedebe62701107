"""Holdings: listing through key slots, decrypted downloads with Range, deletion of whole
studies and documents, and removal of blobs nobody holds any more."""

from __future__ import annotations

import io
import zipfile

from hds_common.testing.dicom import make_pdf, make_study
from tests.storage.support import StorageEnv, multipart_files
from tests.storage.support_identity import TestAccount


async def _shared_study(env: StorageEnv) -> tuple[TestAccount, TestAccount, str, list[str]]:
    """An institution publishes a study and a report; a patient imports them."""
    institution = env.institution()
    files = make_study(2, patient_name="Hold^Hanna", patient_id="H-1")
    package_id = await env.create_package(institution)
    assert (await env.upload(institution, package_id, files)).status_code == 201
    document = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("r.pdf", make_pdf("Befund Hanna"))], patient_id="H-1", title="Befund"),
    )
    assert document.status_code == 201
    await env.complete(institution, package_id)
    patient = env.account("patient")
    imported = await env.import_package(
        patient, package_id, await env.package_key(institution, package_id)
    )
    assert imported.status_code == 200, imported.text
    return institution, patient, package_id, [f.sha256 for f in files]


async def test_an_importer_lists_and_downloads_its_holdings(env: StorageEnv) -> None:
    _, patient, package_id, _ = await _shared_study(env)
    headers = env.auth(patient)

    patients = (await env.client.get("/storage/v1/patients", headers=headers)).json()
    studies = (await env.client.get("/storage/v1/studies", headers=headers)).json()
    documents = (await env.client.get("/storage/v1/documents", headers=headers)).json()

    assert [(p["name"], p["patient_id"], p["package_id"]) for p in patients] == [
        ("Hold^Hanna", "H-1", package_id)
    ]
    assert patients[0]["study_ids"] == [studies[0]["id"]]
    assert patients[0]["document_ids"] == [documents[0]["id"]]
    filtered = await env.client.get(
        "/storage/v1/studies", params={"patient": patients[0]["id"]}, headers=headers
    )
    assert [s["id"] for s in filtered.json()] == [studies[0]["id"]]
    detail = (
        await env.client.get(f"/storage/v1/studies/{studies[0]['id']}", headers=headers)
    ).json()
    instance = detail["series"][0]["instances"][0]

    whole = await env.client.get(f"/storage/v1/objects/{instance['id']}", headers=headers)
    assert whole.status_code == 200
    assert whole.headers["etag"] == f'"{instance["sha256"]}"'
    assert len(whole.content) == instance["size"]
    ranged = await env.client.get(
        f"/storage/v1/objects/{instance['id']}", headers={**headers, "Range": "bytes=128-131"}
    )
    assert ranged.status_code == 206
    assert ranged.content == b"DICM"
    assert ranged.headers["content-range"] == f"bytes 128-131/{instance['size']}"
    tail = await env.client.get(
        f"/storage/v1/objects/{instance['id']}", headers={**headers, "Range": "bytes=-10"}
    )
    assert tail.content == whole.content[-10:]
    unsatisfiable = await env.client.get(
        f"/storage/v1/objects/{instance['id']}", headers={**headers, "Range": "bytes=999999-"}
    )
    assert unsatisfiable.status_code == 416

    archive = await env.client.get(
        f"/storage/v1/studies/{studies[0]['id']}/archive", headers=headers
    )
    assert archive.status_code == 200
    members = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert len([m for m in members if m.startswith("DICOM/")]) == 2

    stranger = env.account("patient")
    denied = await env.client.get(
        f"/storage/v1/objects/{instance['id']}", headers=env.auth(stranger)
    )
    assert denied.status_code == 404
    assert (await env.client.get("/storage/v1/studies", headers=env.auth(stranger))).json() == []


async def test_listing_needs_the_grant_of_the_same_account(pg_env: StorageEnv) -> None:
    env = pg_env
    _, patient, _, _ = await _shared_study(env)
    other = env.account("patient")
    token = env.issuer.mint(patient.id, roles=["patient"], grant=env.user_grant(other))

    response = await env.client.get(
        "/storage/v1/studies", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 403
    assert response.json()["type"] == "urn:hds:problem:grant-mismatch"
    expired = env.issuer.mint(patient.id, roles=["patient"], grant=env.user_grant(patient, ttl=-5))
    response = await env.client.get(
        "/storage/v1/studies", headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status_code == 401
    assert response.json()["type"] == "urn:hds:problem:grant-invalid"


async def test_deleting_removes_blobs_once_nobody_holds_the_item(env: StorageEnv) -> None:
    institution, patient, package_id, _ = await _shared_study(env)
    study_id = (await env.client.get("/storage/v1/studies", headers=env.auth(patient))).json()[0][
        "id"
    ]
    document_id = (await env.client.get("/storage/v1/documents", headers=env.auth(patient))).json()[
        0
    ]["id"]
    blobs = await env.blob_keys(f"objects/{package_id}/")
    assert len(blobs) == 3
    before = await env.usage(patient)

    deleted = await env.client.delete(f"/storage/v1/studies/{study_id}", headers=env.auth(patient))

    assert deleted.status_code == 204
    assert (await env.client.get("/storage/v1/studies", headers=env.auth(patient))).json() == []
    assert await env.usage(patient) == before - sum(
        s["size"]
        for s in (await env.client.get("/storage/v1/studies", headers=env.auth(institution))).json()
    )
    # The institution still holds the study: nothing is removed yet.
    assert await env.blob_keys(f"objects/{package_id}/") == blobs
    again = await env.client.delete(f"/storage/v1/studies/{study_id}", headers=env.auth(patient))
    assert again.status_code == 404

    by_institution = await env.client.delete(
        f"/storage/v1/studies/{study_id}", headers=env.auth(institution)
    )
    assert by_institution.status_code == 204
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 1
    assert await env.count_rows(f"instances WHERE study_id = '{study_id}'") == 0
    assert await env.count_rows(f"studies WHERE id = '{study_id}'") == 0

    assert (
        await env.client.delete(f"/storage/v1/documents/{document_id}", headers=env.auth(patient))
    ).status_code == 204
    assert await env.usage(patient) == 0
    # The patient holds nothing of the package any more: its key slot is gone too.
    assert (
        await env.count_rows(
            f"key_slots WHERE package_id = '{package_id}' AND account_id = '{patient.id}'"
        )
        == 0
    )
    assert (
        await env.client.delete(
            f"/storage/v1/documents/{document_id}", headers=env.auth(institution)
        )
    ).status_code == 204
    assert await env.blob_keys(f"objects/{package_id}/") == []
    assert await env.usage(institution) == 0


async def test_single_instances_cannot_be_deleted(pg_env: StorageEnv) -> None:
    env = pg_env
    institution, _, _, _ = await _shared_study(env)
    study = (await env.client.get("/storage/v1/studies", headers=env.auth(institution))).json()[0]
    detail = (
        await env.client.get(f"/storage/v1/studies/{study['id']}", headers=env.auth(institution))
    ).json()
    instance_id = detail["series"][0]["instances"][0]["id"]

    by_object = await env.client.delete(
        f"/storage/v1/objects/{instance_id}", headers=env.auth(institution)
    )
    as_study = await env.client.delete(
        f"/storage/v1/studies/{instance_id}", headers=env.auth(institution)
    )

    assert by_object.status_code == 405
    assert as_study.status_code == 404
    assert (
        await env.client.get(f"/storage/v1/objects/{instance_id}", headers=env.auth(institution))
    ).status_code == 200
