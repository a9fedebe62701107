"""``GET /internal/v1/packages/{id}/items/{item}/content``: DLX's one call for one item.
A study answers exactly what ``archive?item=`` answers, a document exactly what
``documents/{id}`` answers, each with its kind in ``X-HDS-Item-Kind``; one request reads
and decrypts the item's index rows once (counted at the repository and at the cipher)."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hds_common.testing.dicom import make_pdf, make_study
from hds_storage.downloads.repository import IndexRepository
from hds_storage.keys import MetaCipher
from tests.storage.support import StorageEnv, multipart_files

PDF = make_pdf("Befund zum Knie")


async def _package(env: StorageEnv, *, complete: bool = True) -> dict[str, Any]:
    """A package with a study of three instances and a PDF report, and a package grant."""
    institution = env.institution()
    package_id = await env.create_package(institution)
    uploaded = await env.upload(institution, package_id, make_study(3, patient_id="PID-1"))
    assert uploaded.status_code == 201, uploaded.text
    study_id = uploaded.json()["instances"][0]["study_id"]
    documents = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("r.pdf", PDF)], patient_id="PID-1", title="Befund"),
    )
    assert documents.status_code == 201, documents.text
    if complete:
        await env.complete(institution, package_id)
    package_key = await env.package_key(institution, package_id)
    grant = {**env.service(), "X-HDS-Grant": env.package_grant(package_id, package_key)}
    return {
        "package_id": package_id,
        "study_id": study_id,
        "document_id": documents.json()["documents"][0]["id"],
        "grant": grant,
        "package_key": package_key,
        "institution": institution,
    }


def _content(package_id: str, item_id: str) -> str:
    return f"/internal/v1/packages/{package_id}/items/{item_id}/content"


_SAME_HEADERS = ("content-type", "content-length", "etag", "accept-ranges", "content-disposition")


async def test_a_study_is_its_archive(env: StorageEnv) -> None:
    p = await _package(env)
    content = await env.client.get(_content(p["package_id"], p["study_id"]), headers=p["grant"])
    archive = await env.client.get(
        f"/internal/v1/packages/{p['package_id']}/archive",
        params={"item": p["study_id"]},
        headers=p["grant"],
    )

    assert content.status_code == 200, content.text
    assert content.headers["x-hds-item-kind"] == "study"
    assert content.headers["content-type"] == "application/zip"
    assert content.content == archive.content
    for name in _SAME_HEADERS:
        assert content.headers.get(name) == archive.headers.get(name), name
    names = zipfile.ZipFile(io.BytesIO(content.content)).namelist()
    assert names[:2] == ["DICOMDIR", "README.TXT"]
    assert len([n for n in names if n.startswith("DICOM/")]) == 3
    assert "IHE_PDI/REPORT01.PDF" not in names


async def test_a_document_is_itself(env: StorageEnv) -> None:
    p = await _package(env)
    content = await env.client.get(_content(p["package_id"], p["document_id"]), headers=p["grant"])
    document = await env.client.get(
        f"/internal/v1/packages/{p['package_id']}/documents/{p['document_id']}",
        headers=p["grant"],
    )

    assert content.status_code == 200, content.text
    assert content.headers["x-hds-item-kind"] == "document"
    assert content.headers["content-type"] == "application/pdf"
    assert content.content == PDF == document.content
    for name in _SAME_HEADERS:
        assert content.headers.get(name) == document.headers.get(name), name


async def test_ranges_as_the_archive_and_documents_routes(env: StorageEnv) -> None:
    p = await _package(env)
    for item_id in (p["study_id"], p["document_id"]):
        url = _content(p["package_id"], item_id)
        full = await env.client.get(url, headers=p["grant"])
        total = len(full.content)
        etag = full.headers["etag"]

        partial = await env.client.get(url, headers={**p["grant"], "Range": "bytes=10-109"})
        assert partial.status_code == 206
        assert partial.content == full.content[10:110]
        assert partial.headers["content-range"] == f"bytes 10-109/{total}"
        assert partial.headers["content-length"] == "100"
        assert partial.headers["x-hds-item-kind"] == full.headers["x-hds-item-kind"]
        resumed = await env.client.get(
            url, headers={**p["grant"], "Range": "bytes=50-", "If-Range": etag}
        )
        assert resumed.status_code == 206
        assert resumed.content == full.content[50:]
        stale = await env.client.get(
            url, headers={**p["grant"], "Range": "bytes=50-", "If-Range": '"other"'}
        )
        assert stale.status_code == 200
        assert stale.content == full.content
        beyond = await env.client.get(url, headers={**p["grant"], "Range": f"bytes={total}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{total}"


async def test_an_item_the_package_does_not_hold(env: StorageEnv) -> None:
    p = await _package(env)
    other = await _package(env)
    for item_id in ("nope", other["study_id"], other["document_id"]):
        response = await env.client.get(_content(p["package_id"], item_id), headers=p["grant"])
        assert response.status_code == 404, item_id
        assert response.json()["type"] == "urn:hds:problem:item-not-found"
        assert "x-hds-item-kind" not in response.headers


async def test_an_incomplete_package_answers_409_first(env: StorageEnv) -> None:
    p = await _package(env, complete=False)
    for item_id in (p["study_id"], "nope"):
        # Before the grant is even looked at, as the other grant routes.
        for headers in (p["grant"], env.service()):
            response = await env.client.get(_content(p["package_id"], item_id), headers=headers)
            assert response.status_code == 409
            assert response.json()["type"] == "urn:hds:problem:package-incomplete"
            assert int(response.headers["Retry-After"]) >= 1
            assert response.json()["retry_after"] >= 1


async def test_tokens_and_grants_as_the_other_grant_routes(env: StorageEnv) -> None:
    p = await _package(env)
    url = _content(p["package_id"], p["study_id"])
    no_service = await env.client.get(url, headers={"X-HDS-Grant": p["grant"]["X-HDS-Grant"]})
    assert no_service.status_code == 401
    no_grant = await env.client.get(url, headers=env.service())
    assert no_grant.status_code == 403
    assert no_grant.json()["type"] == "urn:hds:problem:grant-required"
    other = await env.create_package(p["institution"])
    foreign = {**env.service(), "X-HDS-Grant": env.package_grant(other, p["package_key"])}
    refused = await env.client.get(url, headers=foreign)
    assert refused.status_code == 403


Loads = Counter[str]


def _count_index_reads(monkeypatch: pytest.MonkeyPatch) -> Loads:
    """Wrap every read of IndexRepository: the wrapper counts, then runs the real query."""
    loads: Loads = Counter()
    for name in (
        "patients",
        "study",
        "studies",
        "studies_of_package",
        "series_of_studies",
        "instances_of_studies",
        "document",
        "documents",
        "documents_of_package",
        "patient_of_package",
    ):
        real: Callable[..., Awaitable[Any]] = getattr(IndexRepository, name)

        def counted(
            real: Callable[..., Awaitable[Any]] = real, name: str = name
        ) -> Callable[..., Awaitable[Any]]:
            async def read(self: IndexRepository, *args: Any, **kwargs: Any) -> Any:
                loads[name] += 1
                return await real(self, *args, **kwargs)

            return read

        monkeypatch.setattr(IndexRepository, name, counted())
    return loads


def _count_decryptions(monkeypatch: pytest.MonkeyPatch) -> Loads:
    """Count every decryption of a metadata row, by table and row id."""
    opened: Loads = Counter()
    real = MetaCipher.open

    def open_counted(self: MetaCipher, table: str, row_id: str, sealed: bytes) -> dict[str, Any]:
        if table != "packages":  # the key check of the grant, not metadata
            opened[f"{table}/{row_id}"] += 1
        return real(self, table, row_id, sealed)

    monkeypatch.setattr(MetaCipher, "open", open_counted)
    return opened


async def test_one_request_loads_the_item_metadata_once(
    env: StorageEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = await _package(env)
    loads = _count_index_reads(monkeypatch)
    opened = _count_decryptions(monkeypatch)

    study = await env.client.get(_content(p["package_id"], p["study_id"]), headers=p["grant"])

    assert study.status_code == 200
    # The kind comes from the study's own row; no list of the package's items is read.
    assert loads["studies_of_package"] == loads["documents_of_package"] == 0
    assert {name: count for name, count in loads.items() if count > 1} == {}
    assert loads["series_of_studies"] == loads["instances_of_studies"] == 1
    # Every row of the study (patient, study, series, three instances) decrypted once.
    assert opened[f"studies/{p['study_id']}"] == 1
    assert sum(1 for key in opened if key.startswith("instances/")) == 3
    assert set(opened.values()) == {1}

    loads.clear()
    opened.clear()
    document = await env.client.get(_content(p["package_id"], p["document_id"]), headers=p["grant"])

    assert document.status_code == 200
    assert loads["studies_of_package"] == loads["documents_of_package"] == 0
    assert loads["document"] == 1
    assert {name: count for name, count in loads.items() if count > 1} == {}
    # A document is streamed as it is: no metadata row needs opening for it.
    assert sum(opened.values()) <= 1
