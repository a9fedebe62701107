"""Corpus test of ingest, through the gateway on PostgreSQL + S3: every file of
pydicom's bundled test data (present locally) and every broken DICOM and PDF file the
test generators make is either accepted, published, downloaded byte-identical through
DLX and imported into a real archive (Debian's Orthanc, in a network namespace of its
own) without rejection, or refused with a 4xx problem whose detail names the reason."""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom.data
import pytest

from hds_common.testing.dicom import broken_dicom_files, broken_pdf_files, make_dicom, make_pdf
from hds_common.testing.orthanc import import_into_orthanc
from tests.e2e.support import RunningSuite

pytestmark = pytest.mark.slow

BIRTH_DATE = "19700101"
PROBLEM = "application/problem+json"
# What a refusal's detail says, one of the checks by name (see hds_storage.ingest.probe).
REASON = re.compile(
    r"no DICM preamble"
    r"|malformed DICOM (file meta information|dataset): .{10,}"
    r"|lacks [A-Z][A-Za-z]+"
    r"|[A-Z][A-Za-z]+UID \(?.*(differs from|is not a valid UID|is longer than)"
    r"|TransferSyntaxUID \(0002,0010\) .* is not a transfer syntax"
    r"|the DICOM header .* exceeds"
    r"|DICOM header cannot be parsed"
    r"|no %PDF- header|not a readable PDF|has no page"
)
# Well-formed files of the corpus (several transfer syntaxes): refusing them would be a
# fault of the checks, not of the files.
MUST_ACCEPT = {
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_jpeg_dcmd.dcm",
    "image_dfl.dcm",
    "waveform_ecg.dcm",
    "control.dcm",
}
# Broken files of the corpus itself, named for their flaw.
MUST_REFUSE = {"MR_truncated.dcm", "rtplan_truncated.dcm", "no_meta_group_length.dcm"}


@dataclass
class Outcome:
    name: str
    data: bytes
    status: int
    answer: dict[str, Any]
    downloaded: bytes | None = None


def corpus_files() -> list[tuple[str, bytes]]:
    """Every regular file of pydicom's test data that is here (none fetched), by a name
    unique in the list, plus the generated broken ones and a well-formed control."""
    files: list[tuple[str, bytes]] = []
    seen: set[str] = set()
    for path in sorted(Path(p) for p in pydicom.data.get_testdata_files()):
        if not path.is_file():
            continue
        name = path.name if path.name not in seen else f"{path.parent.name}-{path.name}"
        seen.add(name)
        files.append((name, path.read_bytes()))
    files.extend(broken_dicom_files().items())
    files.append(("control.dcm", make_dicom(patient_id="CORPUS-1").data))
    return files


def pdf_files() -> list[tuple[str, bytes]]:
    return [*broken_pdf_files().items(), ("control.pdf", make_pdf("Corpus control"))]


def _identity(data: bytes) -> tuple[str, str] | None:
    """PatientID and SOPInstanceUID as a lenient reader sees them (to group the files
    into packages of one patient without repeated instances), or ``None``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            return str(dataset.get("PatientID", "")), str(dataset.get("SOPInstanceUID", ""))
    except Exception:
        return None


def package_groups(files: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
    """Files in groups that can share a package: one patient, no SOP Instance UID twice.
    Each file is still uploaded by a request of its own (a refusal is the file's alone)."""
    groups: list[tuple[str, set[str], list[tuple[str, bytes]]]] = []
    alone: list[list[tuple[str, bytes]]] = []
    for name, data in files:
        identity = _identity(data)
        if identity is None:
            alone.append([(name, data)])
            continue
        patient, sop = identity
        for group_patient, sops, members in groups:
            if group_patient == patient and sop not in sops:
                sops.add(sop)
                members.append((name, data))
                break
        else:
            groups.append((patient, {sop}, [(name, data)]))
    return [members for _, _, members in groups] + alone


class Publisher:
    """One package per group of files, one upload request per file; what is accepted is
    completed, given a code and downloaded through DLX."""

    def __init__(self, suite: RunningSuite) -> None:
        self.suite = suite
        credentials = suite.institution
        with self.client() as client:
            login = client.post(
                "/auth/v1/login",
                json={"email": credentials["email"], "password": credentials["password"]},
            )
        assert login.status_code == 200, login.text
        self.headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.suite.gateway_url, timeout=120)

    def dicom(self, files: list[tuple[str, bytes]]) -> list[Outcome]:
        with self.client() as client:
            package_id = self._package(client)
            outcomes = []
            for name, data in files:
                response = client.post(
                    f"/storage/v1/packages/{package_id}/instances",
                    headers={**self.headers, "Content-Type": "application/dicom"},
                    content=data,
                )
                outcomes.append(self._outcome(name, data, response))
            self._download(client, package_id, outcomes)
            return outcomes

    def pdf(self, files: list[tuple[str, bytes]]) -> list[Outcome]:
        with self.client() as client:
            package_id = self._package(client)
            outcomes = []
            for name, data in files:
                response = client.post(
                    f"/storage/v1/packages/{package_id}/documents",
                    headers=self.headers,
                    data={
                        "patient_id": "CORPUS-PDF",
                        "patient_name": "Corpus^Pdf",
                        "patient_birth_date": BIRTH_DATE,
                    },
                    files={"file": (name, data, "application/pdf")},
                )
                outcomes.append(self._outcome(name, data, response))
            self._download(client, package_id, outcomes)
            return outcomes

    def _package(self, client: httpx.Client) -> str:
        response = client.post("/storage/v1/packages", json={}, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    @staticmethod
    def _outcome(name: str, data: bytes, response: httpx.Response) -> Outcome:
        if response.status_code != 201:
            assert response.headers["content-type"] == PROBLEM, (name, response.text)
        return Outcome(name, data, response.status_code, _json(response))

    def _download(self, client: httpx.Client, package_id: str, outcomes: list[Outcome]) -> None:
        """Publish the package and match what DLX's ``downloadall`` delivers to the
        accepted files, byte for byte (by SHA-256)."""
        accepted = [o for o in outcomes if o.status == 201]
        if not accepted:
            return
        completed = client.post(f"/storage/v1/packages/{package_id}/complete", headers=self.headers)
        assert completed.status_code == 200, completed.text
        issued = client.post(
            "/codes/v1/codes",
            json={"package_id": package_id, "birth_date": BIRTH_DATE},
            headers=self.headers,
        )
        assert issued.status_code == 201, issued.text
        token = client.post(
            f"/dlx/v1/tokentfa/{issued.json()['code']}",
            json={"tfaAnswer": [{"questionId": "1", "answer": BIRTH_DATE}]},
        )
        assert token.status_code == 200, token.text
        everything = client.get(
            "/dlx/v1/downloadall", headers={"Authorization": f"Bearer {token.text}"}
        )
        assert everything.status_code == 200, everything.text
        archive = zipfile.ZipFile(io.BytesIO(everything.content))
        entries = [
            archive.read(n)
            for n in archive.namelist()
            if n.startswith(("DICOM/", "IHE_PDI/")) and not n.endswith("/")
        ]
        by_digest = {hashlib.sha256(entry).hexdigest(): entry for entry in entries}
        assert len(entries) == len({hashlib.sha256(o.data).hexdigest() for o in accepted})
        for outcome in accepted:
            outcome.downloaded = by_digest.get(hashlib.sha256(outcome.data).hexdigest())


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {"body": response.text}
    return answer if isinstance(answer, dict) else {"body": answer}


def _check_refusal(outcome: Outcome) -> None:
    assert 400 <= outcome.status < 500, (outcome.name, outcome.status, outcome.answer)
    detail = str(outcome.answer.get("detail", ""))
    assert REASON.search(detail), (outcome.name, outcome.answer)


def test_every_corpus_file_is_accepted_intact_or_refused_with_its_reason(
    suite: RunningSuite, tmp_path: Path
) -> None:
    publisher = Publisher(suite)
    with ThreadPoolExecutor(max_workers=4) as pool:
        pdf_run = pool.submit(publisher.pdf, pdf_files())
        dicom = [
            o for group in pool.map(publisher.dicom, package_groups(corpus_files())) for o in group
        ]
        pdfs = pdf_run.result()

    accepted = [o for o in dicom if o.status == 201]
    for outcome in dicom + pdfs:
        if outcome.status == 201:
            # Byte-identical through storage's encryption and DLX's PDI ZIP.
            assert outcome.downloaded == outcome.data, outcome.name
        else:
            _check_refusal(outcome)
    names = {o.name for o in accepted}
    assert names >= MUST_ACCEPT, MUST_ACCEPT - names
    assert not names & MUST_REFUSE
    assert not names & set(broken_dicom_files())
    assert {o.name for o in pdfs if o.status == 201} == {"control.pdf"}
    group_length = next(o for o in dicom if o.name == "group-length-huge.dcm")
    assert "FileMetaInformationGroupLength (0002,0000)" in group_length.answer["detail"]
    header_only = next(o for o in pdfs if o.name == "header-without-body.pdf")
    assert header_only.status == 415

    # What was accepted imports into a real archive, as downloaded.
    folder = tmp_path / "downloaded"
    folder.mkdir()
    paths = []
    for index, outcome in enumerate(accepted):
        path = folder / f"{index:04d}-{outcome.name}"
        assert outcome.downloaded is not None
        path.write_bytes(outcome.downloaded)
        paths.append(path)
    verdicts = import_into_orthanc(paths)
    assert [Path(v.path) for v in verdicts] == paths
    rejected = [(Path(v.path).name, v.status, v.answer) for v in verdicts if not v.accepted]
    assert rejected == []
