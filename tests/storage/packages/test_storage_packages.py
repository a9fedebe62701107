"""Packages: open → complete (explicit or idle), what consumers see, key export, import,
IHE PDI archives with Range for DLX."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

from pydicom import dcmread
from pydicom.fileset import FileSet

from hds_common.crypto import generate_package_key
from hds_common.db import utcnow
from hds_common.testing.dicom import make_pdf, make_study
from hds_storage.maintenance.collector import run_maintenance
from tests.storage.support import StorageEnv, multipart_files


async def test_consumers_see_a_package_only_once_complete(env: StorageEnv) -> None:
    institution = env.institution()
    files = make_study(2, patient_name="Muster^Erika", study_description="MRT Knie")
    package_id = await env.publish(institution, files, complete=False)
    package_key = await env.package_key(institution, package_id)
    grant = {**env.service(), "X-HDS-Grant": env.package_grant(package_id, package_key)}

    status = await env.client.get(
        f"/internal/v1/packages/{package_id}/status", headers=env.service()
    )
    assert status.json()["state"] == "open"
    assert status.json()["institution_id"] == institution.id
    assert status.json()["retry_after"] >= 1
    items = await env.client.get(f"/internal/v1/packages/{package_id}/items", headers=grant)
    assert items.status_code == 409
    assert items.json()["type"] == "urn:hds:problem:package-incomplete"
    assert items.json()["retry_after"] >= 1
    assert "Retry-After" in items.headers
    archive = await env.client.get(f"/internal/v1/packages/{package_id}/archive", headers=grant)
    assert archive.status_code == 409

    await env.complete(institution, package_id)

    status = await env.client.get(
        f"/internal/v1/packages/{package_id}/status", headers=env.service()
    )
    assert status.json() == {
        "id": package_id,
        "state": "complete",
        "institution_id": institution.id,
        "retry_after": 0,
    }
    items = await env.client.get(f"/internal/v1/packages/{package_id}/items", headers=grant)
    assert items.status_code == 200, items.text
    (item,) = items.json()
    assert item["kind"] == "study"
    assert item["mime_type"] == "application/zip"
    assert item["description"] == "MRT Knie"
    assert item["study_instance_uid"] == files[0].study_instance_uid
    assert item["date"] == "2024-04-19"
    assert item["modalities"] == "CT"
    assert item["patient_name"] == "Muster^Erika"
    assert item["patient_birth_date"] == "1970-01-01"
    assert item["patient_sex"] == "F"
    assert item["file_count"] == 2
    assert item["size"] == sum(len(f.data) for f in files)


async def test_idle_packages_complete_on_their_own(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.publish(institution, make_study(1), complete=False)
    state = env.app.state.runtime
    idle = state.settings.package_idle_timeout_seconds

    await run_maintenance(
        state.session_maker,
        state.store,
        upload_stale_seconds=300,
        package_idle_timeout_seconds=idle,
        now=utcnow() + dt.timedelta(seconds=idle - 60),
    )
    status = await env.client.get(
        f"/internal/v1/packages/{package_id}/status", headers=env.service()
    )
    assert status.json()["state"] == "open"

    late = await run_maintenance(
        state.session_maker,
        state.store,
        upload_stale_seconds=300,
        package_idle_timeout_seconds=idle,
        now=utcnow() + dt.timedelta(seconds=idle + 1),
    )
    assert late.completed_packages >= 1
    status = await env.client.get(
        f"/internal/v1/packages/{package_id}/status", headers=env.service()
    )
    assert status.json()["state"] == "complete"


async def test_package_key_goes_only_to_the_publishing_institution(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    package_key = await env.package_key(institution, package_id)
    assert len(package_key) == 32

    stranger = env.institution()
    response = await env.client.get(
        f"/internal/v1/packages/{package_id}/key",
        headers={**env.service(), "X-HDS-Grant": env.user_grant(stranger)},
    )
    assert response.status_code == 403
    unauthenticated = await env.client.get(
        f"/internal/v1/packages/{package_id}/key",
        headers={"X-HDS-Grant": env.user_grant(institution)},
    )
    assert unauthenticated.status_code == 401


async def test_import_gives_an_account_the_package_within_its_quota(env: StorageEnv) -> None:
    institution = env.institution()
    files = make_study(2)
    package_id = await env.publish(institution, files)
    package_key = await env.package_key(institution, package_id)
    patient = env.account("patient")

    wrong_key = await env.import_package(patient, package_id, generate_package_key())
    assert wrong_key.status_code == 403
    response = await env.import_package(patient, package_id, package_key)

    size = sum(len(f.data) for f in files)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "package_id": package_id,
        "studies": 1,
        "documents": 0,
        "bytes": size,
    }
    studies = (await env.client.get("/storage/v1/studies", headers=env.auth(patient))).json()
    assert [s["study_instance_uid"] for s in studies] == [files[0].study_instance_uid]
    assert await env.usage(patient) == size
    again = await env.import_package(patient, package_id, package_key)
    assert again.json()["bytes"] == 0
    assert await env.usage(patient) == size


async def test_import_of_an_open_package_is_refused(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.publish(institution, make_study(1), complete=False)
    package_key = await env.package_key(institution, package_id)

    response = await env.import_package(env.account(), package_id, package_key)

    assert response.status_code == 409
    assert response.json()["type"] == "urn:hds:problem:package-incomplete"


async def test_package_archive_is_ihe_pdi_with_ranges(env: StorageEnv, tmp_path: Path) -> None:
    institution = env.institution()
    files = make_study(3)
    package_id = await env.create_package(institution)
    assert (await env.upload(institution, package_id, files)).status_code == 201
    pdf = make_pdf("Befundtext")
    uploaded = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("r.pdf", pdf)], patient_id="PID-1", title="Befund"),
    )
    assert uploaded.status_code == 201, uploaded.text
    document_id = uploaded.json()["documents"][0]["id"]
    await env.complete(institution, package_id)
    package_key = await env.package_key(institution, package_id)
    grant = {**env.service(), "X-HDS-Grant": env.package_grant(package_id, package_key)}

    full = await env.client.get(f"/internal/v1/packages/{package_id}/archive", headers=grant)

    assert full.status_code == 200, full.text
    assert full.headers["content-type"] == "application/zip"
    assert int(full.headers["content-length"]) == len(full.content)
    assert full.headers["accept-ranges"] == "bytes"
    etag = full.headers["etag"]
    archive = zipfile.ZipFile(io.BytesIO(full.content))
    names = archive.namelist()
    assert names[:2] == ["DICOMDIR", "README.TXT"]
    assert "IHE_PDI/REPORT01.PDF" in names
    assert archive.read("IHE_PDI/REPORT01.PDF") == pdf
    dicom_members = [n for n in names if n.startswith("DICOM/")]
    assert sorted(archive.read(n) for n in dicom_members) == sorted(f.data for f in files)
    assert {dcmread(io.BytesIO(archive.read(n))).SOPInstanceUID for n in dicom_members} == {
        f.sop_instance_uid for f in files
    }
    archive.extractall(tmp_path / "cd")
    fileset = FileSet(dcmread(tmp_path / "cd" / "DICOMDIR"))
    assert len(fileset) == 3
    assert {instance.SOPInstanceUID for instance in fileset} == {f.sop_instance_uid for f in files}

    partial = await env.client.get(
        f"/internal/v1/packages/{package_id}/archive", headers={**grant, "Range": "bytes=100-1099"}
    )
    assert partial.status_code == 206
    assert partial.content == full.content[100:1100]
    assert partial.headers["content-range"] == f"bytes 100-1099/{len(full.content)}"
    resumed = await env.client.get(
        f"/internal/v1/packages/{package_id}/archive",
        headers={**grant, "Range": "bytes=1000-", "If-Range": etag},
    )
    assert resumed.status_code == 206
    assert resumed.content == full.content[1000:]
    stale = await env.client.get(
        f"/internal/v1/packages/{package_id}/archive",
        headers={**grant, "Range": "bytes=1000-", "If-Range": '"other"'},
    )
    assert stale.status_code == 200
    assert stale.content == full.content
    beyond = await env.client.get(
        f"/internal/v1/packages/{package_id}/archive",
        headers={**grant, "Range": f"bytes={len(full.content)}-"},
    )
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(full.content)}"

    items = (
        await env.client.get(f"/internal/v1/packages/{package_id}/items", headers=grant)
    ).json()
    study_id = next(i["id"] for i in items if i["kind"] == "study")
    one = await env.client.get(
        f"/internal/v1/packages/{package_id}/archive", params={"item": study_id}, headers=grant
    )
    assert one.status_code == 200
    assert "IHE_PDI/REPORT01.PDF" not in zipfile.ZipFile(io.BytesIO(one.content)).namelist()
    unknown = await env.client.get(
        f"/internal/v1/packages/{package_id}/archive", params={"item": "nope"}, headers=grant
    )
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:hds:problem:item-not-found"

    document = await env.client.get(
        f"/internal/v1/packages/{package_id}/documents/{document_id}", headers=grant
    )
    assert document.status_code == 200
    assert document.content == pdf
    assert document.headers["content-type"] == "application/pdf"
    other_package = await env.create_package(institution)
    foreign_grant = {**env.service(), "X-HDS-Grant": env.package_grant(other_package, package_key)}
    refused = await env.client.get(
        f"/internal/v1/packages/{package_id}/items", headers=foreign_grant
    )
    assert refused.status_code == 403


async def test_institution_lists_its_packages(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    files = make_study(2, patient_name="Liste^Lena")
    package_id = await env.publish(institution, files, complete=False)

    listed = await env.client.get("/storage/v1/packages", headers=env.auth(institution))
    one = await env.client.get(f"/storage/v1/packages/{package_id}", headers=env.auth(institution))

    assert listed.status_code == 200
    (package,) = listed.json()
    assert package == one.json()
    assert package["state"] == "open"
    assert package["patient"]["name"] == "Liste^Lena"
    assert package["studies"] == 1
    assert package["size"] == sum(len(f.data) for f in files)
    hidden = await env.client.get(
        f"/storage/v1/packages/{package_id}", headers=env.auth(env.institution())
    )
    assert hidden.status_code == 404
