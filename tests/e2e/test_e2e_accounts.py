"""Accounts end to end through the gateway: registration with a real activation mail,
import of an access code into the account, downloads decrypted with the account's key,
a password reset with the recovery code after which the same data still decrypts."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

import httpx
import pytest

from hds_common.testing.dicom import make_pdf, make_study, write_study
from tests.e2e.support import RunningSuite, publish

pytestmark = pytest.mark.slow

BIRTH_DATE = "19800315"


def login(client: httpx.Client, email: str, password: str) -> dict[str, str]:
    response = client.post("/auth/v1/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_register_activate_import_download_reset(suite: RunningSuite, tmp_path: Path) -> None:
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    email = f"patient-{uuid.uuid4().hex[:8]}@example.org"
    password = "a long and unusual passphrase 1"

    registered = client.post(
        "/auth/v1/register", json={"email": email, "password": password, "role": "patient"}
    )
    assert registered.status_code == 201, registered.text
    recovery_code = registered.json()["recovery_code"]
    # Before activation the right password answers like a wrong one (no enumeration).
    assert (
        client.post("/auth/v1/login", json={"email": email, "password": password}).status_code
        == 401
    )

    mail = suite.smtp.messages_to(email)[-1]
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    link = re.search(r"https?://\S+/auth/v1/activate\?token=\S+", body.get_content())
    assert link is not None
    assert link.group(0).startswith(suite.gateway_url)
    assert httpx.get(link.group(0), timeout=30).status_code == 200
    patient = login(client, email, password)

    # An institution publishes; the patient imports the code into the account.
    study = make_study(4, series=2, patient_name="Konto^Anna", patient_id="ACC-7", seed=11)
    folder = tmp_path / "study"
    write_study(folder, study)
    (folder / "befund.pdf").write_bytes(make_pdf("Befund Konto"))
    code = publish(suite, folder, BIRTH_DATE)["code"]

    wrong = client.post(
        "/codes/v1/import", json={"code": code, "birth_date": "19800316"}, headers=patient
    )
    assert wrong.status_code == 401
    imported = client.post(
        "/codes/v1/import",
        json={"code": code.lower().replace("-", ""), "birth_date": BIRTH_DATE},
        headers=patient,
    )
    assert imported.status_code == 200, imported.text

    studies = client.get("/storage/v1/studies", headers=patient).json()
    assert len(studies) == 1
    assert studies[0]["patient"]["name"] == "Konto^Anna"
    detail = client.get(f"/storage/v1/studies/{studies[0]['id']}", headers=patient).json()
    objects = [i for s in detail["series"] for i in s["instances"]]
    assert len(objects) == 4
    by_uid = {f.sop_instance_uid: f for f in study}

    def download_all_and_compare(headers: dict[str, str]) -> None:
        for instance in objects:
            data = client.get(f"/storage/v1/objects/{instance['id']}", headers=headers)
            assert data.status_code == 200
            assert (
                hashlib.sha256(data.content).hexdigest()
                == by_uid[instance["sop_instance_uid"]].sha256
            )

    download_all_and_compare(patient)
    usage = client.get("/storage/v1/usage", headers=patient).json()
    assert usage["used_bytes"] == sum(i["size"] for i in objects) + len(make_pdf("Befund Konto"))

    # Reset with the recovery code: a new password, a new recovery code, the same key.
    assert client.post(
        "/auth/v1/password/reset",
        json={"email": email, "recovery_code": "WRONG-CODE-0000", "new_password": "x" * 20},
    ).status_code in (400, 401, 403)
    new_password = "another long passphrase 2"
    reset = client.post(
        "/auth/v1/password/reset",
        json={"email": email, "recovery_code": recovery_code, "new_password": new_password},
    )
    assert reset.status_code == 200, reset.text
    assert reset.json()["recovery_code"] != recovery_code
    assert (
        client.post("/auth/v1/login", json={"email": email, "password": password}).status_code
        == 401
    )
    download_all_and_compare(login(client, email, new_password))

    # Deleting the study from the account removes it from the holdings.
    after_reset = login(client, email, new_password)
    assert (
        client.delete(f"/storage/v1/studies/{studies[0]['id']}", headers=after_reset).status_code
        == 204
    )
    assert client.get("/storage/v1/studies", headers=after_reset).json() == []
