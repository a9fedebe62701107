"""Sharing: an account gives another a study or document it holds, an institution
delivers a whole package; the recipient reads it with its own key, pays for it with its
own quota, and loses it when the share is revoked. Refused recipients all look alike."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import text

from hds_common.testing.dicom import DicomFile, make_pdf, make_study
from tests.storage.support import StorageEnv, multipart_files
from tests.storage.support_identity import TestAccount

PROBLEM = "application/problem+json"


# -- a published package, imported by a patient -------------------------------------------------


@dataclass
class Published:
    institution: TestAccount
    patient: TestAccount
    package_id: str
    package_key: bytes
    study_id: str  # study A, shared in most tests
    other_study_id: str
    document_id: str
    files: list[DicomFile]  # of study A
    size: int  # plaintext bytes of study A


async def publish(env: StorageEnv, *, import_into: TestAccount | None = None) -> Published:
    institution = env.institution()
    study_a = make_study(2, series=1, patient_name="Teilen^Tina", patient_id="SH-1")
    study_b = make_study(1, series=1, patient_name="Teilen^Tina", patient_id="SH-1")
    package_id = await env.create_package(institution)
    assert (await env.upload(institution, package_id, study_a + study_b)).status_code == 201
    report = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("r.pdf", make_pdf("Befund Tina"))], patient_id="SH-1"),
    )
    assert report.status_code == 201, report.text
    await env.complete(institution, package_id)
    patient = import_into or env.account("patient")
    package_key = await env.package_key(institution, package_id)
    imported = await env.import_package(patient, package_id, package_key)
    assert imported.status_code == 200, imported.text
    studies = (await env.client.get("/storage/v1/studies", headers=env.auth(patient))).json()
    documents = (await env.client.get("/storage/v1/documents", headers=env.auth(patient))).json()
    uid_a = study_a[0].study_instance_uid
    (a,) = [s for s in studies if s["study_instance_uid"] == uid_a]
    (b,) = [s for s in studies if s["study_instance_uid"] != uid_a]
    return Published(
        institution=institution,
        patient=patient,
        package_id=package_id,
        package_key=package_key,
        study_id=a["id"],
        other_study_id=b["id"],
        document_id=documents[0]["id"],
        files=study_a,
        size=int(a["size"]),
    )


async def share(
    env: StorageEnv, sharer: TestAccount, path: str, to: str, **headers: str
) -> httpx.Response:
    return await env.client.post(
        f"/storage/v1/{path}/shares",
        json={"recipient": to},
        headers={**env.auth(sharer), **headers},
    )


async def slots_of(env: StorageEnv, account: TestAccount) -> int:
    async with env.engine.connect() as connection:
        query = text("SELECT COUNT(*) FROM key_slots WHERE account_id = :a")
        return int((await connection.execute(query, {"a": account.id})).scalar_one())


async def shares_of(env: StorageEnv, account: TestAccount) -> int:
    """Share rows the account gave (the database is shared by the tests of a run)."""
    async with env.engine.connect() as connection:
        query = text("SELECT COUNT(*) FROM shares WHERE from_account_id = :a")
        return int((await connection.execute(query, {"a": account.id})).scalar_one())


async def study_ids(env: StorageEnv, account: TestAccount) -> list[str]:
    response = await env.client.get("/storage/v1/studies", headers=env.auth(account))
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()]


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:hds:problem:{slug}", body
    return body


# -- tests ---------------------------------------------------------------------------------------


async def test_a_shared_study_is_read_with_the_recipients_own_key(env: StorageEnv) -> None:
    identity = env.identity
    published = await publish(env)
    reader = env.account()

    response = await share(env, published.patient, f"studies/{published.study_id}", reader.email)

    assert response.status_code == 201, response.text
    shared = response.json()
    assert shared["item_kind"] == "study"
    assert shared["item_id"] == published.study_id
    assert shared["package_id"] == published.package_id
    assert (shared["from_account_id"], shared["to_account_id"]) == (
        published.patient.id,
        reader.id,
    )
    assert await study_ids(env, reader) == [published.study_id]
    assert await env.usage(reader) == published.size == await env.listed_bytes(reader)
    # Every object decrypts with the recipient's own grant to the very bytes uploaded.
    detail = await env.client.get(
        f"/storage/v1/studies/{published.study_id}", headers=env.auth(reader)
    )
    instances = [i for s in detail.json()["series"] for i in s["instances"]]
    expected = {f.sop_instance_uid: f.sha256 for f in published.files}
    for instance in instances:
        data = await env.client.get(
            f"/storage/v1/objects/{instance['id']}", headers=env.auth(reader)
        )
        assert data.status_code == 200
        assert hashlib.sha256(data.content).hexdigest() == expected[instance["sop_instance_uid"]]
    archive = f"/storage/v1/studies/{published.study_id}/archive"
    theirs = await env.client.get(archive, headers=env.auth(reader))
    ours = await env.client.get(archive, headers=env.auth(published.patient))
    assert theirs.status_code == ours.status_code == 200
    assert hashlib.sha256(theirs.content).digest() == hashlib.sha256(ours.content).digest()
    # The rest of the package stays out of reach, though the key slot is the package's.
    for path in (
        f"studies/{published.other_study_id}",
        f"studies/{published.other_study_id}/archive",
        f"objects/{published.document_id}",
    ):
        denied = await env.client.get(f"/storage/v1/{path}", headers=env.auth(reader))
        assert denied.status_code == 404, path
    assert (await env.client.get("/storage/v1/documents", headers=env.auth(reader))).json() == []
    # Both sides see the share; the mail says that something came, not what.
    mine = (await env.client.get("/storage/v1/shares", headers=env.auth(published.patient))).json()
    theirs_list = (await env.client.get("/storage/v1/shares", headers=env.auth(reader))).json()
    assert mine == {"outgoing": [shared], "incoming": []}
    assert theirs_list == {"outgoing": [], "incoming": [shared]}
    assert [note["account_id"] for note in identity.notes] == [reader.id]
    assert "Teilen" not in repr(identity.notes)
    assert "SH-1" not in repr(identity.notes)


async def test_a_document_is_shared_by_account_id(pg_env: StorageEnv) -> None:
    env = pg_env
    published = await publish(env)
    reader = env.account(role="referrer")

    response = await share(
        env, published.patient, f"documents/{published.document_id}", reader.id.upper()
    )

    assert response.status_code == 201, response.text
    assert response.json()["item_kind"] == "document"
    assert response.json()["to_account_id"] == reader.id
    documents = (await env.client.get("/storage/v1/documents", headers=env.auth(reader))).json()
    assert [d["id"] for d in documents] == [published.document_id]
    pdf = await env.client.get(
        f"/storage/v1/objects/{published.document_id}", headers=env.auth(reader)
    )
    assert pdf.status_code == 200
    assert pdf.content == make_pdf("Befund Tina")
    assert await study_ids(env, reader) == []


async def test_sharing_again_is_idempotent(pg_env: StorageEnv) -> None:
    env = pg_env
    identity = env.identity
    published = await publish(env)
    reader = env.account()
    path = f"studies/{published.study_id}"

    first = await share(env, published.patient, path, reader.email)
    again = await share(env, published.patient, path, reader.email)
    by_id = await share(env, published.patient, path, reader.id)

    assert first.status_code == 201
    assert again.status_code == by_id.status_code == 200
    assert again.json() == by_id.json() == first.json()
    assert await env.usage(reader) == published.size
    assert await shares_of(env, published.patient) == 1
    assert len(identity.notes) == 1


async def test_refused_recipients_all_get_the_same_answer(env: StorageEnv) -> None:
    published = await publish(env)
    inactive = env.account(active=False)
    refusing = env.account(accept_shares=False)
    path = f"studies/{published.study_id}"

    answers = [
        await share(env, published.patient, path, to)
        for to in (
            "nobody@example.org",
            str(uuid.uuid4()),
            "not-an-account-id",
            inactive.email,
            inactive.id,
            refusing.email,
            refusing.id,
        )
    ]

    bodies = [problem(a, 404, "recipient-not-found") for a in answers]
    assert len({repr({k: v for k, v in b.items() if k != "request_id"}) for b in bodies}) == 1
    assert await shares_of(env, published.patient) == 0
    for account in (inactive, refusing):
        assert await study_ids(env, account) == []
        assert await env.usage(account) == 0
        assert await slots_of(env, account) == 0


async def test_sharing_with_oneself_is_refused(pg_env: StorageEnv) -> None:
    env = pg_env
    patient = env.account()
    published = await publish(env, import_into=patient)
    path = f"studies/{published.study_id}"

    for to in (patient.email, patient.id):
        problem(await share(env, patient, path, to), 400, "share-with-self")
    assert await shares_of(env, published.patient) == 0


async def test_only_a_holder_with_its_grant_shares(env: StorageEnv) -> None:
    published = await publish(env)
    reader = env.account()
    stranger = env.account("patient")
    study = f"studies/{published.study_id}"

    problem(await share(env, stranger, study, reader.email), 404, "study-not-found")
    problem(
        await share(env, stranger, f"documents/{published.document_id}", reader.email),
        404,
        "document-not-found",
    )
    # An id of the other kind, or of nothing at all.
    problem(
        await share(env, published.patient, f"studies/{published.document_id}", reader.email),
        404,
        "study-not-found",
    )
    problem(
        await share(env, published.patient, f"documents/{uuid.uuid4()}", reader.email),
        404,
        "document-not-found",
    )
    no_grant = await env.client.post(
        f"/storage/v1/{study}/shares",
        json={"recipient": reader.email},
        headers=env.auth(published.patient, grant=False),
    )
    problem(no_grant, 403, "grant-required")
    anonymous = await env.client.post(
        f"/storage/v1/{study}/shares", json={"recipient": reader.email}
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM
    # A patient is no institution: no deliveries of whole packages.
    problem(
        await share(env, published.patient, f"packages/{published.package_id}", reader.email),
        403,
        "role-required",
    )
    assert await shares_of(env, published.patient) == 0
    assert await study_ids(env, reader) == []


async def test_bad_ids_and_bodies_are_problems(pg_env: StorageEnv) -> None:
    env = pg_env
    published = await publish(env)
    headers = env.auth(published.patient)
    url = f"/storage/v1/studies/{published.study_id}/shares"

    bad_bodies: list[dict[str, Any]] = [
        {"json": {}},
        {"json": {"recipient": ""}},
        {"json": {"recipient": 42}},
        {"json": {"recipient": "a\x00b@example.org"}},
        {"json": {"recipient": "x" * 321}},
        {"json": {"recipient": "someone@example.org", "role": "admin"}},
        {"json": ["someone@example.org"]},
        {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    ]
    for kwargs in bad_bodies:
        response = await env.client.post(
            url, **{**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
        )
        # A body that is not JSON at all is a 400 that says so; a wrong shape is a 422.
        expected = 400 if "content" in kwargs else 422
        assert response.status_code == expected, (kwargs, response.text)
        assert response.headers["content-type"] == PROBLEM
    too_long = await env.client.post(
        f"/storage/v1/studies/{'x' * 65}/shares", json={"recipient": "a@b.org"}, headers=headers
    )
    assert too_long.status_code == 422
    assert too_long.headers["content-type"] == PROBLEM
    control = await env.client.post(
        "/storage/v1/studies/a%01b/shares", json={"recipient": "a@b.org"}, headers=headers
    )
    assert control.status_code == 422
    for path in (f"/storage/v1/shares/{uuid.uuid4()}", "/storage/v1/shares/nothing"):
        problem(await env.client.delete(path, headers=headers), 404, "share-not-found")
    assert await shares_of(env, published.patient) == 0


async def test_a_share_that_does_not_fit_waits_and_deletes_nothing(pg_env: StorageEnv) -> None:
    env = pg_env
    published = await publish(env)
    for mode in ("manual", "automatic"):
        recipient = env.account(deletion_mode=mode)
        own = await publish(env, import_into=recipient)
        own_blobs = await env.blob_keys(f"objects/{own.package_id}/")
        held_before = await study_ids(env, recipient)
        used = await env.usage(recipient)
        recipient.quota_bytes = used + published.size // 2

        response = await share(
            env, published.patient, f"studies/{published.study_id}", recipient.email
        )

        assert response.status_code == 201, response.text
        waiting = response.json()
        assert waiting["state"] == "waiting", mode
        assert waiting["size_bytes"] == published.size
        # Nothing of the recipient went, nothing of the share arrived.
        assert await study_ids(env, recipient) == held_before, mode
        assert await env.blob_keys(f"objects/{own.package_id}/") == own_blobs
        assert await env.usage(recipient) == used
        listed = (await env.client.get("/storage/v1/shares", headers=env.auth(recipient))).json()
        assert [(s["id"], s["state"]) for s in listed["incoming"]] == [(waiting["id"], "waiting")]
        # Accepting while it does not fit: 507, still nothing deleted.
        url = f"/storage/v1/shares/{waiting['id']}/accept"
        problem(await env.client.post(url, headers=env.auth(recipient)), 507, "quota-exceeded")
        assert await study_ids(env, recipient) == held_before
        # The sharer cannot accept for the recipient.
        problem(
            await env.client.post(url, headers=env.auth(published.patient)), 404, "share-not-found"
        )


async def test_a_waiting_share_comes_in_once_the_recipient_makes_room(pg_env: StorageEnv) -> None:
    env = pg_env
    published = await publish(env)
    recipient = env.account(deletion_mode="automatic")
    own = await publish(env, import_into=recipient)
    recipient.quota_bytes = await env.usage(recipient) + published.size // 2
    waiting = (
        await share(env, published.patient, f"studies/{published.study_id}", recipient.id)
    ).json()
    assert waiting["state"] == "waiting"

    # The recipient deletes one of its own studies: the waiting share is tried again.
    deleted = await env.client.delete(
        f"/storage/v1/studies/{own.study_id}", headers=env.auth(recipient)
    )
    assert deleted.status_code == 204
    held = await study_ids(env, recipient)
    assert published.study_id in held
    assert await env.usage(recipient) == await env.listed_bytes(recipient)
    assert await env.usage(recipient) <= recipient.quota_bytes
    listed = (await env.client.get("/storage/v1/shares", headers=env.auth(recipient))).json()
    assert [s["state"] for s in listed["incoming"]] == ["active"]
    archive = await env.client.get(
        f"/storage/v1/studies/{published.study_id}/archive", headers=env.auth(recipient)
    )
    assert archive.status_code == 200


async def test_a_waiting_share_can_be_accepted_or_declined(pg_env: StorageEnv) -> None:
    env = pg_env
    published = await publish(env)
    recipient = env.account(quota_bytes=published.size - 1)
    declined_by = env.account(quota_bytes=published.size - 1)
    first = (
        await share(env, published.patient, f"studies/{published.study_id}", recipient.id)
    ).json()
    second = (
        await share(env, published.patient, f"studies/{published.study_id}", declined_by.id)
    ).json()
    assert first["state"] == second["state"] == "waiting"
    assert await slots_of(env, recipient) == 0

    recipient.quota_bytes = published.size
    accepted = await env.client.post(
        f"/storage/v1/shares/{first['id']}/accept", headers=env.auth(recipient)
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "active"
    assert await study_ids(env, recipient) == [published.study_id]
    assert await env.usage(recipient) == published.size

    declined = await env.client.delete(
        f"/storage/v1/shares/{second['id']}", headers=env.auth(declined_by)
    )
    assert declined.status_code == 204
    assert await study_ids(env, declined_by) == []
    assert await slots_of(env, declined_by) == 0
    listed = (await env.client.get("/storage/v1/shares", headers=env.auth(declined_by))).json()
    assert listed["incoming"] == []


async def test_revoking_takes_back_access_and_quota(env: StorageEnv) -> None:
    published = await publish(env)
    reader = env.account()
    shared = (
        await share(env, published.patient, f"studies/{published.study_id}", reader.email)
    ).json()
    stranger = env.account("patient")
    url = f"/storage/v1/shares/{shared['id']}"

    problem(await env.client.delete(url, headers=env.auth(stranger)), 404, "share-not-found")
    revoked = await env.client.delete(url, headers=env.auth(published.patient))

    assert revoked.status_code == 204
    assert await study_ids(env, reader) == []
    archive = await env.client.get(
        f"/storage/v1/studies/{published.study_id}/archive", headers=env.auth(reader)
    )
    assert archive.status_code == 404
    assert await env.usage(reader) == 0
    assert await slots_of(env, reader) == 0
    for account in (published.patient, reader):
        listed = await env.client.get("/storage/v1/shares", headers=env.auth(account))
        assert listed.json() == {"outgoing": [], "incoming": []}
    problem(
        await env.client.delete(url, headers=env.auth(published.patient)), 404, "share-not-found"
    )
    # The sharer keeps its own copy.
    assert published.study_id in await study_ids(env, published.patient)
    assert len(await env.blob_keys(f"objects/{published.package_id}/")) == 4


async def test_revoking_removes_blobs_nobody_holds_any_more(pg_env: StorageEnv) -> None:
    env = pg_env
    published = await publish(env)
    reader = env.account()
    shared = (
        await share(env, published.patient, f"studies/{published.study_id}", reader.email)
    ).json()
    for owner in (published.patient, published.institution):
        deleted = await env.client.delete(
            f"/storage/v1/studies/{published.study_id}", headers=env.auth(owner)
        )
        assert deleted.status_code == 204
    assert len(await env.blob_keys(f"objects/{published.package_id}/")) == 4

    revoked = await env.client.delete(
        f"/storage/v1/shares/{shared['id']}", headers=env.auth(published.patient)
    )

    assert revoked.status_code == 204
    # Study A's two instances are gone; study B and the report are still held.
    assert len(await env.blob_keys(f"objects/{published.package_id}/")) == 2


async def test_revoking_leaves_what_the_recipient_has_otherwise(pg_env: StorageEnv) -> None:
    env = pg_env
    published = await publish(env)
    second_sharer = env.account("patient")
    imported = await env.import_package(second_sharer, published.package_id, published.package_key)
    assert imported.status_code == 200
    reader = env.account()
    path = f"studies/{published.study_id}"
    first = (await share(env, published.patient, path, reader.email)).json()
    second = (await share(env, second_sharer, path, reader.email)).json()
    assert await env.usage(reader) == published.size  # one holding, charged once

    # Another share still gives the study: it stays.
    assert (
        await env.client.delete(
            f"/storage/v1/shares/{first['id']}", headers=env.auth(published.patient)
        )
    ).status_code == 204
    assert await study_ids(env, reader) == [published.study_id]
    assert await env.usage(reader) == published.size

    # The recipient imports the package with its own code: its items are its own now.
    assert (
        await env.import_package(reader, published.package_id, published.package_key)
    ).status_code == 200
    assert (
        await env.client.delete(
            f"/storage/v1/shares/{second['id']}", headers=env.auth(second_sharer)
        )
    ).status_code == 204
    assert sorted(await study_ids(env, reader)) == sorted(
        [published.study_id, published.other_study_id]
    )


async def test_the_recipient_removes_a_share_by_deleting_the_item(env: StorageEnv) -> None:
    published = await publish(env)
    reader = env.account()
    await share(env, published.patient, f"studies/{published.study_id}", reader.email)

    deleted = await env.client.delete(
        f"/storage/v1/studies/{published.study_id}", headers=env.auth(reader)
    )

    assert deleted.status_code == 204
    for account in (published.patient, reader):
        listed = await env.client.get("/storage/v1/shares", headers=env.auth(account))
        assert listed.json() == {"outgoing": [], "incoming": []}
    assert await env.usage(reader) == 0
    assert await slots_of(env, reader) == 0
    # The recipient may also end the share itself.
    again = (
        await share(env, published.patient, f"studies/{published.study_id}", reader.email)
    ).json()
    ended = await env.client.delete(f"/storage/v1/shares/{again['id']}", headers=env.auth(reader))
    assert ended.status_code == 204
    assert await study_ids(env, reader) == []


async def test_an_institution_delivers_a_package_to_a_referrer(env: StorageEnv) -> None:
    identity = env.identity
    published = await publish(env)
    referrer = env.account(role="referrer")
    path = f"packages/{published.package_id}"

    delivered = await share(env, published.institution, path, referrer.email)

    assert delivered.status_code == 201, delivered.text
    body = delivered.json()
    assert (body["item_kind"], body["item_id"]) == ("package", published.package_id)
    assert sorted(await study_ids(env, referrer)) == sorted(
        [published.study_id, published.other_study_id]
    )
    documents = (await env.client.get("/storage/v1/documents", headers=env.auth(referrer))).json()
    assert [d["id"] for d in documents] == [published.document_id]
    assert await env.usage(referrer) == await env.listed_bytes(referrer) > published.size
    assert (await share(env, published.institution, path, referrer.id)).status_code == 200
    assert [note["account_id"] for note in identity.notes] == [referrer.id]

    # Only the publishing institution, only complete packages.
    other = env.institution()
    problem(await share(env, other, path, referrer.email), 404, "package-not-found")
    open_package = await env.create_package(published.institution)
    problem(
        await share(env, published.institution, f"packages/{open_package}", referrer.email),
        409,
        "package-incomplete",
    )

    revoked = await env.client.delete(
        f"/storage/v1/shares/{body['id']}", headers=env.auth(published.institution)
    )
    assert revoked.status_code == 204
    assert await study_ids(env, referrer) == []
    assert await env.usage(referrer) == 0
    assert await slots_of(env, referrer) == 0


async def test_a_failed_mail_does_not_fail_the_share(pg_env: StorageEnv) -> None:
    env = pg_env
    identity = env.identity
    identity.mail_failing = True
    published = await publish(env)
    reader = env.account()

    response = await share(env, published.patient, f"studies/{published.study_id}", reader.email)

    assert response.status_code == 201, response.text
    assert await study_ids(env, reader) == [published.study_id]
