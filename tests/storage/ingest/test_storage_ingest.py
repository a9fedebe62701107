"""Ingest: DICOM instances and PDF reports by content, idempotency, all-or-nothing."""

from __future__ import annotations

import hashlib
import zlib

import pytest
from pydicom.uid import generate_uid

from hds_common.testing.dicom import make_dicom, make_pdf, make_study
from tests.storage.support import StorageEnv, multipart_files

PROBLEM = "application/problem+json"


async def test_multipart_study_is_indexed_with_metadata(env: StorageEnv) -> None:
    institution = env.institution()
    package_id = await env.create_package(institution)
    files = make_study(3, patient_name="Muster^Max", patient_id="P-77", birth_date="19650412")

    response = await env.upload(institution, package_id, files)

    assert response.status_code == 201, response.text
    stored = response.json()["instances"]
    assert [i["sop_instance_uid"] for i in stored] == [f.sop_instance_uid for f in files]
    assert all(i["status"] == "created" for i in stored)
    assert [i["sha256"] for i in stored] == [f.sha256 for f in files]
    studies = (await env.client.get("/storage/v1/studies", headers=env.auth(institution))).json()
    assert len(studies) == 1
    study = studies[0]
    assert study["study_instance_uid"] == files[0].study_instance_uid
    assert study["patient"]["patient_id"] == "P-77"
    assert study["patient"]["name"] == "Muster^Max"
    assert study["patient"]["birth_date"] == "1965-04-12"
    assert study["patient"]["sex"] == "F"
    assert study["date"] == "2024-04-19"
    assert study["description"] == "CT Thorax"
    assert study["modalities"] == ["CT"]
    assert study["series_count"] == 2
    assert study["instance_count"] == 3
    assert study["size"] == sum(len(f.data) for f in files)

    detail = await env.client.get(
        f"/storage/v1/studies/{study['id']}", headers=env.auth(institution)
    )
    assert detail.status_code == 200
    instances = {i["sop_instance_uid"]: i for s in detail.json()["series"] for i in s["instances"]}
    for f in files:
        instance = instances[f.sop_instance_uid]
        assert instance["size"] == len(f.data)
        assert instance["crc32"] == zlib.crc32(f.data)
        assert instance["sha256"] == f.sha256
        assert instance["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.2"
        assert instance["transfer_syntax_uid"] == "1.2.840.10008.1.2.1"
        body = await env.client.get(
            f"/storage/v1/objects/{instance['id']}", headers=env.auth(institution)
        )
        assert body.status_code == 200
        assert body.headers["content-type"] == "application/dicom"
        assert body.content == f.data
    assert await env.usage(institution) == study["size"]


async def test_single_application_dicom_body(env: StorageEnv) -> None:
    institution = env.institution()
    package_id = await env.create_package(institution)
    dicom = make_dicom()

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers={**env.auth(institution), "Content-Type": "application/dicom"},
        content=dicom.data,
    )

    assert response.status_code == 201, response.text
    (instance,) = response.json()["instances"]
    assert instance["sha256"] == dicom.sha256
    assert await env.usage(institution) == len(dicom.data)


async def test_same_sop_instance_uid_is_idempotent_or_conflicts(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    original = make_dicom(seed=1)
    first = await env.upload(institution, package_id, [original])
    assert first.status_code == 201

    again = await env.upload(institution, package_id, [original])
    assert again.status_code == 200, again.text
    assert again.json()["instances"][0]["status"] == "existing"
    assert again.json()["instances"][0]["id"] == first.json()["instances"][0]["id"]

    altered = make_dicom(
        sop_uid=original.sop_instance_uid,
        study_uid=original.study_instance_uid,
        series_uid=original.series_instance_uid,
        seed=2,
    )
    other = make_dicom()
    conflict = await env.upload(institution, package_id, [other, altered])
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == PROBLEM
    problem = conflict.json()
    assert problem["type"] == "urn:hds:problem:instance-conflict"
    assert problem["part"] == "f1.dcm"
    assert problem["sop_instance_uid"] == original.sop_instance_uid
    # Nothing of the failed request stays: not the other instance, not its blob, no usage.
    assert await env.usage(institution) == len(original.data)
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 1


async def test_duplicate_within_one_request_is_stored_once(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    dicom = make_dicom()

    response = await env.upload(institution, package_id, [dicom, dicom])

    assert response.status_code == 201
    statuses = [i["status"] for i in response.json()["instances"]]
    assert statuses == ["created", "existing"]
    assert await env.usage(institution) == len(dicom.data)
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 1


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("photo.dcm", b"\x89PNG\r\n\x1a\n" + b"\0" * 300, "no DICM preamble"),
        ("notes.dcm", b"just some text, not DICOM at all", "no DICM preamble"),
        ("broken.dcm", b"\0" * 128 + b"DICM" + b"\xff" * 400, "malformed DICOM file meta"),
    ],
)
async def test_non_dicom_part_is_rejected_by_content_and_nothing_is_applied(
    env: StorageEnv, name: str, content: bytes, reason: str
) -> None:
    institution = env.institution()
    package_id = await env.create_package(institution)
    good = make_study(2)

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers=env.auth(institution),
        **multipart_files([("a.dcm", good[0].data), (name, content), ("b.dcm", good[1].data)]),
    )

    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:hds:problem:unsupported-content"
    assert problem["part"] == name
    assert problem["part_index"] == 1
    assert reason in problem["detail"]
    assert await env.usage(institution) == 0
    assert await env.blob_keys(f"objects/{package_id}/") == []
    studies = await env.client.get("/storage/v1/studies", headers=env.auth(institution))
    assert studies.json() == []
    assert await env.count_rows("upload_batches") == 0


async def test_a_dicom_file_named_like_a_pdf_is_accepted(env: StorageEnv) -> None:
    institution = env.institution()
    package_id = await env.create_package(institution)
    dicom = make_dicom()

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers=env.auth(institution),
        files=[("report", ("report.pdf", dicom.data, "application/pdf"))],
    )

    assert response.status_code == 201, response.text


async def test_dicom_without_identifying_uids_is_unprocessable(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    import io

    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(make_dicom().data))
    del dataset.SeriesInstanceUID
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)

    response = await env.upload_raw(institution, package_id, buffer.getvalue())

    assert response.status_code == 422
    assert response.json()["type"] == "urn:hds:problem:dicom-incomplete"
    assert "SeriesInstanceUID" in response.json()["detail"]


async def test_other_request_content_types_are_refused(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers={**env.auth(institution), "Content-Type": "text/plain"},
        content=make_dicom().data,
    )

    assert response.status_code == 415
    assert response.json()["part"] == "body"


async def test_truncated_multipart_body_is_a_bad_request_and_not_applied(
    pg_env: StorageEnv,
) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    dicom = make_dicom()
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.dcm"\r\n\r\n'
        + dicom.data
        + b'\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="b.dcm"\r\n\r\n'
        + make_dicom().data[:500]
    )

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers={**env.auth(institution), "Content-Type": "multipart/form-data; boundary=XyZ"},
        content=body,
    )

    assert response.status_code == 400
    assert response.json()["type"] == "urn:hds:problem:malformed-multipart"
    assert await env.blob_keys(f"objects/{package_id}/") == []
    assert await env.usage(institution) == 0


async def test_a_package_holds_one_patient(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    assert (
        await env.upload(institution, package_id, [make_dicom(patient_id="A")])
    ).status_code == 201

    response = await env.upload(institution, package_id, [make_dicom(patient_id="B")])

    assert response.status_code == 422
    assert response.json()["type"] == "urn:hds:problem:patient-mismatch"
    mixed = await env.upload(
        env.identity.accounts[institution.id],
        await env.create_package(institution),
        [make_dicom(patient_id="C"), make_dicom(patient_id="D")],
    )
    assert mixed.status_code == 422
    assert mixed.json()["part"] == "f1.dcm"


async def test_pdf_upload_with_patient_assignment(env: StorageEnv) -> None:
    institution = env.institution()
    package_id = await env.create_package(institution)
    dicom = make_dicom(patient_id="P-1", patient_name="Roe^Richard")
    assert (await env.upload(institution, package_id, [dicom])).status_code == 201
    pdf = make_pdf("Befund: unauffaellig")

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files(
            [("befund.pdf", pdf)], patient_id="P-1", title="Befund", date="2024-04-20"
        ),
    )

    assert response.status_code == 201, response.text
    (document,) = response.json()["documents"]
    assert document["sha256"] == hashlib.sha256(pdf).hexdigest()
    listed = (await env.client.get("/storage/v1/documents", headers=env.auth(institution))).json()
    assert [(d["id"], d["title"], d["date"], d["patient"]["name"]) for d in listed] == [
        (document["id"], "Befund", "2024-04-20", "Roe^Richard")
    ]
    body = await env.client.get(
        f"/storage/v1/objects/{document['id']}", headers=env.auth(institution)
    )
    assert body.content == pdf
    assert body.headers["content-type"] == "application/pdf"
    assert await env.usage(institution) == len(dicom.data) + len(pdf)


async def test_pdf_checks(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    pdf = make_pdf()

    not_pdf = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files(
            [("ok.pdf", pdf), ("fake.pdf", b"GIF89a....")], patient_id="X", patient_name="Doe^John"
        ),
    )
    assert not_pdf.status_code == 415
    assert not_pdf.json()["part"] == "fake.pdf"

    unassigned = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("ok.pdf", pdf)]),
    )
    assert unassigned.status_code == 422
    assert unassigned.json()["type"] == "urn:hds:problem:patient-required"

    nameless = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("ok.pdf", pdf)], patient_id="X"),
    )
    assert nameless.status_code == 422

    created = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files(
            [("ok.pdf", pdf)],
            patient_id="X",
            patient_name="Doe^John",
            patient_birth_date="1980-02-29",
        ),
    )
    assert created.status_code == 201, created.text
    wrong_patient = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("other.pdf", make_pdf("x"))], patient_id="Y"),
    )
    assert wrong_patient.status_code == 422
    assert wrong_patient.json()["type"] == "urn:hds:problem:patient-mismatch"
    assert await env.usage(institution) == len(pdf)
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 1


async def test_only_the_owning_institution_uploads_into_an_open_package(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    dicom = make_dicom()

    other = await env.upload(env.institution(), package_id, [dicom])
    assert other.status_code == 404
    patient = await env.upload(env.account("patient"), package_id, [dicom])
    assert patient.status_code == 403
    no_grant = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers=env.auth(institution, grant=False),
        **multipart_files([("a.dcm", dicom.data)]),
    )
    assert no_grant.status_code == 403
    assert no_grant.json()["type"] == "urn:hds:problem:grant-required"
    anonymous = await env.client.post(f"/storage/v1/packages/{package_id}/instances")
    assert anonymous.status_code == 401

    await env.complete(institution, package_id)
    closed = await env.upload(institution, package_id, [dicom])
    assert closed.status_code == 409
    assert closed.json()["type"] == "urn:hds:problem:package-complete"


async def test_sop_instance_uids_are_per_package(pg_env: StorageEnv) -> None:
    env = pg_env
    institution = env.institution()
    dicom = make_dicom(sop_uid=generate_uid())
    await env.publish(institution, [dicom])
    second = await env.create_package(institution)

    response = await env.upload(institution, second, [dicom])

    assert response.status_code == 201
