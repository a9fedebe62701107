"""Sharing end to end through the gateway: a patient imports an access code and shares
the study with another account by e-mail address; the recipient is told by mail (without
patient data) and downloads the study archive, decrypted with its own key."""

from __future__ import annotations

import hashlib
import io
import re
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest

from hds_common.testing.dicom import make_study, write_study
from tests.e2e.support import RunningSuite, publish

pytestmark = pytest.mark.slow

BIRTH_DATE = "19750612"
PASSWORD = "a long and unusual passphrase 3"


def register(client: httpx.Client, suite: RunningSuite, role: str) -> tuple[str, dict[str, str]]:
    """A new activated account (the link from the real activation mail); its address and
    ``Authorization`` header."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.org"
    registered = client.post(
        "/auth/v1/register", json={"email": email, "password": PASSWORD, "role": role}
    )
    assert registered.status_code == 201, registered.text
    body = suite.smtp.messages_to(email)[-1].get_body(preferencelist=("plain",))
    assert body is not None
    link = re.search(r"https?://\S+/auth/v1/activate\?token=\S+", body.get_content())
    assert link is not None
    assert httpx.get(link.group(0), timeout=30).status_code == 200
    login = client.post("/auth/v1/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return email, {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_a_patient_shares_a_study_by_email(suite: RunningSuite, tmp_path: Path) -> None:
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    _, sharer = register(client, suite, "patient")
    recipient_email, recipient = register(client, suite, "referrer")
    # Shares are off for new accounts; the recipient allows them first.
    assert client.patch(
        "/auth/v1/me/settings", json={"accept_shares": True}, headers=recipient
    ).is_success
    study = make_study(3, series=1, patient_name="Geteilt^Gerda", patient_id="SHR-9", seed=21)
    write_study(tmp_path / "study", study)
    code = publish(suite, tmp_path / "study", BIRTH_DATE)["code"]
    imported = client.post(
        "/codes/v1/import", json={"code": code, "birth_date": BIRTH_DATE}, headers=sharer
    )
    assert imported.status_code == 200, imported.text
    (held,) = client.get("/storage/v1/studies", headers=sharer).json()

    shared = client.post(
        f"/storage/v1/studies/{held['id']}/shares",
        json={"recipient": recipient_email.upper()},
        headers=sharer,
    )

    assert shared.status_code == 201, shared.text
    assert client.get("/storage/v1/shares", headers=recipient).json()["incoming"] == [shared.json()]
    archive = f"/storage/v1/studies/{held['id']}/archive"
    theirs = client.get(archive, headers=recipient)
    ours = client.get(archive, headers=sharer)
    assert theirs.status_code == ours.status_code == 200
    assert hashlib.sha256(theirs.content).hexdigest() == hashlib.sha256(ours.content).hexdigest()
    with zipfile.ZipFile(io.BytesIO(theirs.content)) as archive_zip:
        members = [archive_zip.read(n) for n in archive_zip.namelist() if n.startswith("DICOM/")]
    assert sorted(hashlib.sha256(m).hexdigest() for m in members) == sorted(f.sha256 for f in study)
    usage = client.get("/storage/v1/usage", headers=recipient).json()
    assert usage["used_bytes"] == held["size"]
    mail = suite.smtp.messages_to(recipient_email)[-1]
    assert "shared" in mail["Subject"]
    assert "Geteilt" not in mail.as_string()
    assert "SHR-9" not in mail.as_string()
