"""Nothing is lost without anyone asking (PostgreSQL + S3, through the gateway, every
service a real process): an institution publishes past the patients' quota and every
package still downloads byte-identical; a stranger's share into a full account in
automatic deletion mode deletes nothing and waits; new accounts refuse shares until they
opt in; retention removes a published package only after its period, with a log entry
and a notice to the institution."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from hds_common.testing.dicom import DicomFile, make_study, write_study
from hds_common.testing.s3server import MotoS3Server
from hds_common.testing.smtp import SmtpTestServer
from tests.e2e.support import RunningSuite, publish, start_suite
from tests.e2e.test_e2e_shares import register

pytestmark = pytest.mark.slow

BIRTH_DATE = "19660407"
# Patients get 1 MiB here, so a few small studies are "more than the quota".
PATIENT_QUOTA_MIB = 1
RETENTION_SECONDS = 12.0


@pytest.fixture(scope="module")
async def lossless_suite(
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: SmtpTestServer,
    s3_server: MotoS3Server,
) -> AsyncIterator[RunningSuite]:
    extra = {
        "HDS_AUTH_DEFAULT_QUOTA_MIB": str(PATIENT_QUOTA_MIB),
        "HDS_STORAGE_RETENTION_DAYS": repr(RETENTION_SECONDS / 86400),
        "HDS_STORAGE_MAINTENANCE_INTERVAL_SECONDS": "0.5",
    }
    async with start_suite(
        tmp_path_factory.mktemp("lossless-var"), smtp_server, s3_server, extra
    ) as running:
        yield running


def _study(seed: int, patient_id: str) -> list[DicomFile]:
    # 4 instances of 256 x 256 x 16 bit: about 0.5 MiB.
    return make_study(4, series=1, rows=256, columns=256, patient_id=patient_id, seed=seed)


def _institution(client: httpx.Client, suite: RunningSuite) -> dict[str, str]:
    credentials = suite.institution
    login = client.post(
        "/auth/v1/login", json={"email": credentials["email"], "password": credentials["password"]}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def _dlx_download_all(client: httpx.Client, code: str) -> httpx.Response:
    token = client.post(
        f"/dlx/v1/tokentfa/{code}", json={"tfaAnswer": [{"questionId": "1", "answer": BIRTH_DATE}]}
    )
    assert token.status_code == 200, token.text
    return client.get("/dlx/v1/downloadall", headers={"Authorization": f"Bearer {token.text}"})


def _dicom_members(archive: bytes) -> list[bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as pdi:
        return sorted(
            pdi.read(name)
            for name in pdi.namelist()
            if name.startswith("DICOM/") and not name.endswith("/")
        )


def _publish(
    suite: RunningSuite, tmp_path: Path, name: str, files: list[DicomFile]
) -> dict[str, Any]:
    write_study(tmp_path / name, files)
    return publish(suite, tmp_path / name, BIRTH_DATE)


def test_an_institution_publishing_past_the_patient_quota_loses_nothing(
    lossless_suite: RunningSuite, tmp_path: Path
) -> None:
    suite = lossless_suite
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    studies = [_study(seed, f"Q-{seed}") for seed in (1, 2, 3)]
    total = sum(len(f.data) for files in studies for f in files)
    assert total > PATIENT_QUOTA_MIB * 1024 * 1024
    published = [_publish(suite, tmp_path, f"s{i}", files) for i, files in enumerate(studies)]

    for answer, files in zip(published, studies, strict=True):
        download = _dlx_download_all(client, answer["code"])
        assert download.status_code == 200, download.text
        assert _dicom_members(download.content) == sorted(f.data for f in files)
    usage = client.get("/storage/v1/usage", headers=_institution(client, suite)).json()
    assert usage["quota_bytes"] is None
    assert usage["used_bytes"] >= total


def test_a_stranger_cannot_push_out_what_an_account_holds(
    lossless_suite: RunningSuite, tmp_path: Path
) -> None:
    suite = lossless_suite
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    recipient_email, recipient = register(client, suite, "patient")
    _, stranger = register(client, suite, "patient")
    assert client.patch(
        "/auth/v1/me/settings", json={"deletion_mode": "automatic"}, headers=recipient
    ).is_success
    own = _publish(suite, tmp_path, "own", _study(11, "OWN-1"))
    theirs = _publish(suite, tmp_path, "theirs", _study(12, "THEIRS-1"))
    for headers, answer in ((recipient, own), (stranger, theirs)):
        imported = client.post(
            "/codes/v1/import",
            json={"code": answer["code"], "birth_date": BIRTH_DATE},
            headers=headers,
        )
        assert imported.status_code == 200, imported.text
    (held,) = client.get("/storage/v1/studies", headers=recipient).json()
    (offered,) = client.get("/storage/v1/studies", headers=stranger).json()
    share_url = f"/storage/v1/studies/{offered['id']}/shares"

    # A new account accepts no shares until its holder turns that on.
    refused = client.post(share_url, json={"recipient": recipient_email}, headers=stranger)
    assert refused.status_code == 404, refused.text
    assert refused.json()["type"] == "urn:hds:problem:recipient-not-found"
    assert client.get("/auth/v1/me", headers=recipient).json()["settings"]["accept_shares"] is False
    assert client.patch(
        "/auth/v1/me/settings", json={"accept_shares": True}, headers=recipient
    ).is_success

    shared = client.post(share_url, json={"recipient": recipient_email}, headers=stranger)

    assert shared.status_code == 201, shared.text
    assert shared.json()["state"] == "waiting"
    after = client.get("/storage/v1/studies", headers=recipient).json()
    assert [s["id"] for s in after] == [held["id"]]
    archive = client.get(f"/storage/v1/studies/{held['id']}/archive", headers=recipient)
    assert archive.status_code == 200
    incoming = client.get("/storage/v1/shares", headers=recipient).json()["incoming"]
    assert [(s["id"], s["state"]) for s in incoming] == [(shared.json()["id"], "waiting")]
    # The stranger revokes: the recipient still holds all it had.
    revoked = client.delete(f"/storage/v1/shares/{shared.json()['id']}", headers=stranger)
    assert revoked.status_code == 204
    assert [s["id"] for s in client.get("/storage/v1/studies", headers=recipient).json()] == [
        held["id"]
    ]


def test_retention_removes_a_package_only_after_its_period(
    lossless_suite: RunningSuite, tmp_path: Path
) -> None:
    suite = lossless_suite
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    institution = _institution(client, suite)
    answer = _publish(suite, tmp_path, "kept", _study(21, "RET-1"))
    package_id = answer["package_id"]

    expired = client.post(f"/codes/v1/codes/{answer['code_id']}/expire", headers=institution)
    assert expired.status_code == 200, expired.text
    expired_at = time.monotonic()
    # Several maintenance passes later, well inside the period: still there.
    time.sleep(RETENTION_SECONDS / 3)
    listed = client.get("/storage/v1/packages", headers=institution).json()
    assert package_id in [p["id"] for p in listed]

    deadline = expired_at + RETENTION_SECONDS + 30
    while time.monotonic() < deadline:
        listed = client.get("/storage/v1/packages", headers=institution).json()
        if package_id not in [p["id"] for p in listed]:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the package was not retired after its retention period")
    assert time.monotonic() - expired_at >= RETENTION_SECONDS

    # The log entry and the mail follow the commit that retired the package.
    notice: list[EmailMessage] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not notice:
        notice = [
            m
            for m in suite.smtp.messages_to(suite.institution["email"])
            if "retention" in str(m["Subject"])
        ]
        time.sleep(0.2)
    assert notice, "no notice mail to the institution"
    log = suite.log_of("storage")
    assert '"package_retired"' in log
    assert package_id in log
    assert package_id in notice[-1].as_string()
    assert "RET-1" not in notice[-1].as_string()
    # Its code can no longer be brought back.
    reactivated = client.post(
        f"/codes/v1/codes/{answer['code_id']}/reactivate", json={}, headers=institution
    )
    assert reactivated.status_code in (404, 409), reactivated.text
    assert reactivated.headers["content-type"] == "application/problem+json"
