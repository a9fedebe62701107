"""``hds publish``: the whole flow through a stand-in of the gateway routes, then import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.uid import generate_uid

from hds_client.files import find_uploads
from tests.client.support import GatewayStandInTransport, run_cli, write_dicom, write_pdf
from tests.codes.support import Account, Harness, stand_in_identity, stand_in_storage

pytestmark = pytest.mark.postgres

MEDIA_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    """Three DICOM files under odd names, a PDF named .bin, and files to skip."""
    root = tmp_path / "cd"
    study = generate_uid()
    write_dicom(root / "DICOM" / "S1" / "IM0001", study=study)
    write_dicom(root / "DICOM" / "S1" / "image.txt", study=study)
    write_dicom(root / "DICOM" / "S2" / "IM0003.dcm", study=study)
    write_dicom(root / "DICOMDIR", study=study, sop_class=MEDIA_DIRECTORY_STORAGE)
    write_pdf(root / "REPORT" / "report.bin")
    (root / "fake.dcm").write_bytes(b"not a dicom file" * 20)
    (root / "README.TXT").write_text("Insert the CD into your computer.")
    return root


@pytest.fixture
def gateway(codes: Harness) -> GatewayStandInTransport:
    return GatewayStandInTransport(
        {
            "/auth/": stand_in_identity(codes.hood),
            "/storage/": stand_in_storage(codes.hood),
            "/codes/": codes.app,
        }
    )


def _demo_credentials(directory: Path, account: Account) -> Path:
    (directory / "var").mkdir(parents=True, exist_ok=True)
    (directory / "var" / "demo-credentials.json").write_text(
        json.dumps(
            {
                "email": account.email,
                "password": account.password,
                "role": "institution",
                "name": account.name,
            }
        )
    )
    return directory


def test_files_are_found_by_content_not_by_name(study_folder: Path) -> None:
    found = find_uploads([study_folder, study_folder / "DICOM" / "S1" / "IM0001"])
    assert sorted(p.name for p in found.dicom) == ["IM0001", "IM0003.dcm", "image.txt"]
    assert [p.name for p in found.pdf] == ["report.bin"]
    assert sorted(p.name for p in found.skipped) == ["DICOMDIR", "README.TXT", "fake.dcm"]


async def test_publish_with_demo_credentials_prints_a_code_that_imports(
    codes: Harness, gateway: GatewayStandInTransport, study_folder: Path, tmp_path: Path
) -> None:
    institution = codes.account(name="Demo Radiology", code_validity_days=60)
    repository = _demo_credentials(tmp_path / "repo", institution)
    status, out, err = await run_cli(
        ["publish", str(study_folder), "--birth-date", "19700131", "--json"],
        transport=gateway,
        cwd=repository,
    )
    assert status == 0, err
    result = json.loads(out)
    assert result["dicom_files"] == 3
    assert result["pdf_files"] == 1
    assert result["skipped_files"] == 3
    assert result["link"].endswith(f"/c/{result['code']}")

    package = codes.hood.packages[result["package_id"]]
    assert package.owner == institution.id
    assert package.complete
    assert len(package.instances) == 3
    assert len(package.documents) == 1
    assert all(instance[128:132] == b"DICM" for instance in package.instances)
    assert package.documents[0].startswith(b"%PDF-")
    # The report went to the patient of the DICOM files.
    assert package.patient == {"patient_id": "P-1234", "name": "Doe^Jane"}

    # The printed code imports into an account.
    patient = codes.account(role="patient")
    response = await codes.client.post(
        "/codes/v1/import",
        json={"code": result["code"], "birth_date": "1970-01-31"},
        headers=codes.auth(patient),
    )
    assert response.status_code == 200, response.text
    assert response.json()["package_id"] == package.id
    [call] = codes.hood.slot_calls
    assert call.account_id == patient.id
    assert call.key == package.key


async def test_publish_with_explicit_credentials_and_days_prints_for_humans(
    codes: Harness, gateway: GatewayStandInTransport, study_folder: Path, tmp_path: Path
) -> None:
    institution = codes.account()
    status, text, err = await run_cli(
        [
            "publish",
            str(study_folder / "DICOM" / "S1"),
            str(study_folder / "REPORT" / "report.bin"),
            "--birth-date",
            "1970-01-31",
            "--days",
            "90",
            "--email",
            institution.email,
            "--password",
            institution.password,
            "--gateway",
            "http://gateway.test",
        ],
        transport=gateway,
        cwd=tmp_path,
    )
    assert status == 0, err
    [issued] = (await codes.client.get("/codes/v1/codes", headers=codes.auth(institution))).json()[
        "items"
    ]
    assert issued["validity_days"] == 90
    assert "Published 2 DICOM file(s) and 1 PDF file(s)" in text
    code_line = next(line for line in text.splitlines() if "Access code:" in line)
    code = code_line.split()[-1]
    assert f"/c/{code}" in text
    assert "Uploading 2 DICOM file(s) and 1 PDF file(s)" in err
    response = await codes.validate(code, "19700131")
    assert response.status_code == 200
    assert response.json()["code_id"] == issued["id"]


async def test_reports_without_images_need_the_patient_named(
    codes: Harness, gateway: GatewayStandInTransport, tmp_path: Path
) -> None:
    repository = _demo_credentials(tmp_path / "repo", codes.account())
    reports = tmp_path / "reports"
    write_pdf(reports / "a.pdf")
    write_pdf(reports / "b" / "c.pdf")
    args = ["publish", str(reports), "--birth-date", "19700131", "--json"]
    status, _, err = await run_cli(args, transport=gateway, cwd=repository)
    assert status == 1
    assert "--patient-id and --patient-name" in err

    status, out, err = await run_cli(
        [*args, "--patient-id", "P-77", "--patient-name", "Roe^Richard"],
        transport=gateway,
        cwd=repository,
    )
    assert status == 0, err
    result = json.loads(out)
    assert (result["dicom_files"], result["pdf_files"]) == (0, 2)
    package = codes.hood.packages[result["package_id"]]
    assert len(package.documents) == 2
    assert package.complete
    assert package.patient == {"patient_id": "P-77", "name": "Roe^Richard"}


async def test_publish_reports_problems_without_a_trace(
    codes: Harness, gateway: GatewayStandInTransport, study_folder: Path, tmp_path: Path
) -> None:
    institution = codes.account()

    async def publish(*args: str, cwd: Path = tmp_path) -> tuple[int, str]:
        status, _, err = await run_cli(["publish", *args], transport=gateway, cwd=cwd)
        return status, err

    status, message = await publish(str(study_folder), "--birth-date", "19700131")
    assert status == 1
    assert "no credentials" in message
    assert "make run" in message
    status, message = await publish(
        str(study_folder), "--birth-date", "19700131", "--email", institution.email,
        "--password", "wrong",
    )  # fmt: skip
    assert status == 1
    assert "login failed (401)" in message
    repository = _demo_credentials(tmp_path / "repo", institution)
    status, message = await publish(str(study_folder), "--birth-date", "19701331", cwd=repository)
    assert status == 1
    assert "--birth-date" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing to publish")
    status, message = await publish(str(empty), "--birth-date", "19700131", cwd=repository)
    assert status == 1
    assert "no DICOM or PDF files found" in message
    status, message = await publish(
        str(study_folder), "--birth-date", "19700131", "--days", "120", cwd=repository
    )
    assert status == 1
    assert "code issue failed (422)" in message
    assert "Traceback" not in message


def test_the_hds_command_is_installed() -> None:
    hds = Path(sys.executable).parent / "hds"
    assert hds.exists()
    env = {**os.environ, "HDS_GATEWAY_URL": "http://127.0.0.1:9"}
    shown = subprocess.run(
        [str(hds), "publish", "--help"], capture_output=True, text=True, timeout=60, env=env
    )
    assert shown.returncode == 0
    assert "--birth-date" in shown.stdout
    assert "http://127.0.0.1:9" in shown.stdout
    missing = subprocess.run(
        [str(hds), "publish", "/no/such/folder", "--birth-date", "19700131", "--email", "a@b.c",
         "--password", "x"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "/no/such/folder: no such file or directory" in missing.stderr
