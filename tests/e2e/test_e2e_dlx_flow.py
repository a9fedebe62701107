"""The whole DLX flow through the gateway, with every service a real process on
PostgreSQL and the S3 protocol: publish with the suite's client (what `hds publish`
runs), then token, tokentfa, list, download of each item, downloadall, resume by Range,
and the IHE PDI checks."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pydicom
import pytest
from jose import jwt
from pydicom.fileset import FileSet

from hds_common.testing.dicom import DicomFile, make_pdf, make_study, write_study
from tests.e2e.support import RunningSuite, publish

pytestmark = pytest.mark.slow

BIRTH_DATE = "19700101"
DLX = {"X-DICOM-LINK-EXCHANGE": "1"}
FILE_ID = re.compile(r"^[A-Z0-9_]{1,8}$")


@dataclass
class Published:
    code: str
    code_id: str
    package_id: str
    dicom: dict[str, DicomFile]  # by SOP Instance UID
    pdf: bytes


@pytest.fixture(scope="module")
def published(suite: RunningSuite, tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("publish")
    study_a = make_study(
        5,
        series=2,
        patient_name="Muster^Max",
        patient_id="E2E-1",
        study_description="CT Thorax",
        study_date="20240419",
        seed=1,
    )
    study_b = make_study(
        3,
        series=1,
        patient_name="Muster^Max",
        patient_id="E2E-1",
        study_description="MR Knie",
        study_date="20240501",
        modality="MR",
        seed=2,
    )
    write_study(folder / "a", study_a)
    write_study(folder / "b", study_b)
    pdf = make_pdf("Befund E2E")
    (folder / "report.dat").write_bytes(pdf)
    answer = publish(suite, folder, BIRTH_DATE)
    assert answer["dicom_files"] == 8
    assert answer["pdf_files"] == 1
    assert re.fullmatch(
        r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", answer["code"]
    )
    assert answer["link"] == f"{suite.gateway_url}/c/{answer['code']}"
    return Published(
        code=answer["code"],
        code_id=answer["code_id"],
        package_id=answer["package_id"],
        dicom={f.sop_instance_uid: f for f in study_a + study_b},
        pdf=pdf,
    )


def dlx_token(client: httpx.Client, code: str, answer: str = BIRTH_DATE) -> httpx.Response:
    return client.post(
        f"/dlx/v1/tokentfa/{code}",
        json={"tfaAnswer": [{"questionId": "1", "answer": answer}]},
    )


@pytest.fixture(scope="module")
def client(suite: RunningSuite) -> httpx.Client:
    return httpx.Client(base_url=suite.gateway_url, timeout=60)


def test_gateway_reports_every_service_ready(client: httpx.Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    text = response.text
    for service in ("auth", "codes", "storage", "dlx"):
        assert service in text


def test_portal_links_answer_like_the_token_endpoint(
    client: httpx.Client, published: Published
) -> None:
    direct = client.get(f"/dlx/v1/token/{published.code}")
    by_link = client.get(f"/c/{published.code}", headers=DLX)
    by_query = client.get("/", params={"code": published.code}, headers=DLX)
    unknown = client.get("/dlx/v1/token/ZZZZ-ZZZZ-ZZZZ")
    assert direct.status_code == by_link.status_code == by_query.status_code == 200
    assert direct.json() == by_link.json() == by_query.json() == unknown.json()
    assert direct.json()["tfaQuestion"][0]["questionType"] == "PAT_BIRTH_DATE"
    redirect = client.get(f"/c/{published.code}", follow_redirects=False)
    assert redirect.status_code in (302, 303, 307)
    assert published.code in redirect.headers["location"]


def test_tokentfa_answers_401_for_wrong_and_unknown(
    client: httpx.Client, published: Published
) -> None:
    wrong = dlx_token(client, published.code, "19991231")
    unknown = dlx_token(client, "ZZZZ-ZZZZ-ZZZ0")
    assert wrong.status_code == unknown.status_code == 401


def test_list_and_download_every_item(
    client: httpx.Client, published: Published, tmp_path: Path
) -> None:
    token_answer = dlx_token(client, published.code)
    assert token_answer.status_code == 200
    assert token_answer.headers["content-type"].startswith("application/jwt")
    auth = {"Authorization": f"Bearer {token_answer.text}"}

    listing = client.get("/dlx/v1/list", headers=auth)
    assert listing.status_code == 200
    items = listing.json()["dataItem"]
    studies = [item for item in items if item.get("studyInstanceUID")]
    reports = [item for item in items if item["mimeType"] == "application/pdf"]
    assert len(studies) == 2
    assert len(reports) == 1
    assert {s["date"] for s in studies} == {"2024-04-19", "2024-05-01"}
    assert {s["fileCount"] for s in studies} == {5, 3}
    assert all(s["patientsName"] == "Muster^Max" for s in studies)
    assert all(s["patientsBirthdate"] == "1970-01-01" for s in studies)

    for study in studies:
        response = client.get(f"/dlx/v1/download/{study['id']}", headers=auth)
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content)
        check_pdi_zip(response.content, published, tmp_path / study["id"], expect_pdf=False)

    report = client.get(f"/dlx/v1/download/{reports[0]['id']}", headers=auth)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("application/pdf")
    assert report.content == published.pdf

    assert client.get("/dlx/v1/download/not-an-item", headers=auth).status_code == 400

    everything = client.get("/dlx/v1/downloadall", headers=auth)
    assert everything.status_code == 200
    names = check_pdi_zip(everything.content, published, tmp_path / "all", expect_pdf=True)
    assert len([n for n in names if n.startswith("DICOM/")]) == len(published.dicom)

    # Resume: the first 40% in one request, the rest by Range, byte for byte.
    total = len(everything.content)
    cut = total * 40 // 100
    first = client.get("/dlx/v1/downloadall", headers={**auth, "Range": f"bytes=0-{cut - 1}"})
    rest = client.get(
        "/dlx/v1/downloadall",
        headers={**auth, "Range": f"bytes={cut}-", "If-Range": everything.headers["etag"]},
    )
    assert first.status_code == rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {cut}-{total - 1}/{total}"
    assert first.content + rest.content == everything.content


def check_pdi_zip(
    content: bytes, published: Published, folder: Path, *, expect_pdf: bool
) -> list[str]:
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.testzip() is None
    names = archive.namelist()
    assert "DICOMDIR" in names
    assert "README.TXT" in names
    dicom_names = {n for n in names if n.startswith("DICOM/")}
    for name in dicom_names:
        parts = name.split("/")
        assert len(parts) <= 8
        assert all(FILE_ID.match(part) for part in parts), name
        data = archive.read(name)
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        original = published.dicom[str(dataset.SOPInstanceUID)]
        assert hashlib.sha256(data).hexdigest() == original.sha256
    if expect_pdf:
        reports = [n for n in names if n.startswith("IHE_PDI/")]
        assert [archive.read(n) for n in reports] == [published.pdf]

    folder.mkdir(parents=True)
    archive.extractall(folder)
    fileset = FileSet(pydicom.dcmread(folder / "DICOMDIR"))
    referenced = {"/".join(Path(i.path).relative_to(folder).parts) for i in fileset}
    assert referenced == dicom_names
    verify = subprocess.run(
        ["dciodvfy", str(folder / "DICOMDIR")], capture_output=True, text=True, check=False
    )
    errors = [line for line in (verify.stdout + verify.stderr).splitlines() if "Error" in line]
    assert errors == [], verify.stderr
    return names


def test_account_token_is_refused_on_dlx_routes(
    client: httpx.Client, suite: RunningSuite, published: Published
) -> None:
    credentials = suite.institution
    login = client.post(
        "/auth/v1/login", json={"email": credentials["email"], "password": credentials["password"]}
    )
    account_token = login.json()["access_token"]
    response = client.get("/dlx/v1/list", headers={"Authorization": f"Bearer {account_token}"})
    assert response.status_code == 401
    dlx = dlx_token(client, published.code).text
    assert (
        client.get("/storage/v1/studies", headers={"Authorization": f"Bearer {dlx}"}).status_code
        == 401
    )


def test_expired_dlx_token_is_refused_and_a_fresh_one_works(
    client: httpx.Client, suite: RunningSuite, published: Published
) -> None:
    fresh = dlx_token(client, published.code).text
    claims = jwt.get_unverified_claims(fresh)
    header = jwt.get_unverified_header(fresh)
    # Re-sign the same claims, expired, with the identity service's real current key: the
    # signature is genuine, only the expiry is past.
    key_dir = Path(suite.env["HDS_AUTH_SIGNING_KEY_DIR"])
    # Key files are named by creation time; the newest signs.
    pem = sorted(key_dir.glob("es256-*.pem"))[-1].read_text()
    now = int(time.time())
    expired = jwt.encode(
        {**claims, "iat": now - 3600, "nbf": now - 3600, "exp": now - 600},
        pem,
        algorithm="ES256",
        headers={"kid": header["kid"]},
    )
    answer = client.get("/dlx/v1/list", headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    again = dlx_token(client, published.code).text
    assert (
        client.get("/dlx/v1/list", headers={"Authorization": f"Bearer {again}"}).status_code == 200
    )


def test_expired_code_answers_403_only_with_right_answer(
    client: httpx.Client, suite: RunningSuite, published: Published
) -> None:
    credentials = suite.institution
    token = client.post(
        "/auth/v1/login", json={"email": credentials["email"], "password": credentials["password"]}
    ).json()["access_token"]
    institution = {"Authorization": f"Bearer {token}"}
    assert (
        client.post(f"/codes/v1/codes/{published.code_id}/expire", headers=institution).status_code
        == 200
    )
    try:
        assert dlx_token(client, published.code).status_code == 403
        assert dlx_token(client, published.code, "19800101").status_code == 401
    finally:
        reactivated = client.post(
            f"/codes/v1/codes/{published.code_id}/reactivate", json={}, headers=institution
        )
        assert reactivated.status_code == 200
    assert dlx_token(client, published.code).status_code == 200
