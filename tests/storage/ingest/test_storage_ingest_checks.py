"""What ingest checks of a file's content, as a receiving archive would: the DICOM file
meta and dataset parse strictly (group length, required meta elements, UIDs, the SOP
class and instance agreeing between meta and dataset, a known transfer syntax, the whole
structure to the last byte); a PDF parses as a PDF with at least one page. Every refusal
names the reason in DICOM (or PDF) terms, and nothing of the refused request is kept."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pydicom
import pytest

from hds_common.testing.dicom import (
    broken_dicom_files,
    broken_pdf_files,
    make_dicom,
    make_dicom_header,
    make_pdf,
    make_study,
)
from hds_storage.ingest.probe import DicomProbe
from tests.storage.support import Backend, StorageEnv, multipart_files, storage_env

PROBLEM = "application/problem+json"

# Each broken file: the status and a phrase the problem's detail must contain.
EXPECTED_DICOM = {
    "group-length-huge.dcm": (415, "FileMetaInformationGroupLength (0002,0000) is 2147483632"),
    "group-length-long.dcm": (415, "FileMetaInformationGroupLength (0002,0000) is"),
    "group-length-short.dcm": (415, "announces"),
    "truncated-in-pixel-data.dcm": (415, "the file ends inside PixelData (7FE0,0010)"),
    "truncated-in-header.dcm": (415, "the file ends inside"),
    "truncated-in-meta.dcm": (415, "the file ends inside the file meta information"),
    "wrong-preamble.dcm": (415, "no DICM preamble"),
    "no-preamble.dcm": (415, "no DICM preamble"),
    "unknown-transfer-syntax.dcm": (415, "TransferSyntaxUID (0002,0010) 1.2.840.10008.1.2.9"),
    "implicit-dataset-under-explicit-meta.dcm": (415, "not encoded as its TransferSyntaxUID"),
    "meta-sop-instance-mismatch.dcm": (
        422,
        "MediaStorageSOPInstanceUID (0002,0003)",
    ),
    "sop-instance-uid-leading-zero.dcm": (422, "is not a valid UID"),
    "html-named-dcm.dcm": (415, "no DICM preamble"),
}
EXPECTED_PDF = {
    "html-renamed.pdf": (415, "no %PDF- header"),
    "header-without-body.pdf": (415, "not a readable PDF"),
    "truncated.pdf": (415, "not a readable PDF"),
    "no-pages.pdf": (415, "has no page"),
    "empty.pdf": (415, "no %PDF- header"),
}


def test_every_generated_broken_file_has_an_expectation() -> None:
    assert set(broken_dicom_files()) == set(EXPECTED_DICOM)
    assert set(broken_pdf_files()) == set(EXPECTED_PDF)


@pytest.mark.parametrize("name", sorted(EXPECTED_DICOM))
async def test_broken_dicom_is_refused_with_its_reason_and_nothing_is_kept(
    pg_env: StorageEnv, name: str
) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    good = make_study(2)
    status, phrase = EXPECTED_DICOM[name]

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers=env.auth(institution),
        **multipart_files(
            [("a.dcm", good[0].data), (name, broken_dicom_files()[name]), ("b.dcm", good[1].data)]
        ),
    )

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["part"] == name
    assert problem["part_index"] == 1
    assert phrase in problem["detail"]
    assert await env.usage(institution) == 0
    assert await env.blob_keys(f"objects/{package_id}/") == []
    assert await env.count_rows(f"instances WHERE package_id = '{package_id}'") == 0
    assert await env.count_rows("upload_batches") == 0


async def test_a_missing_meta_element_is_named_by_its_keyword(env: StorageEnv) -> None:
    dataset = pydicom.dcmread(io.BytesIO(make_dicom().data))
    del dataset.file_meta.MediaStorageSOPInstanceUID
    buffer = io.BytesIO()
    # Written as it stands (without the writer filling the meta element back in).
    dataset.save_as(buffer, enforce_file_format=False)
    institution = env.institution()
    package_id = await env.create_package(institution)

    response = await env.upload_raw(institution, package_id, buffer.getvalue())

    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:hds:problem:dicom-incomplete"
    assert "MediaStorageSOPInstanceUID (0002,0003)" in response.json()["detail"]


async def test_a_uid_longer_than_64_characters_is_refused(env: StorageEnv) -> None:
    long_uid = "1.2.826.0.1.3680043.8.498." + "1" * 40
    institution = env.institution()
    package_id = await env.create_package(institution)

    # The writer warns of the invalid value, and writes it.
    with pytest.warns(UserWarning, match="exceeds the maximum length of 64"):
        dicom = make_dicom(study_uid=long_uid)
    response = await env.upload_raw(institution, package_id, dicom.data)

    assert response.status_code == 422
    assert "StudyInstanceUID" in response.json()["detail"]
    assert "longer than 64" in response.json()["detail"]


async def test_a_file_truncated_after_a_large_streamed_header_is_refused_at_its_end(
    pg_env: StorageEnv,
) -> None:
    """The header is known long before the end; the missing tail is still noticed, and
    the blob already written for it is deleted."""
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    rows = columns = 512
    header = make_dicom_header(rows, columns)
    announced = rows * columns * 2

    async def body() -> AsyncIterator[bytes]:
        yield header
        for _ in range(announced // 65536 - 1):
            yield b"\0" * 65536  # one 64 KiB block short of the announced Pixel Data

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/instances",
        headers={**env.auth(institution), "Content-Type": "application/dicom"},
        content=body(),
    )

    assert response.status_code == 415, response.text
    assert "the file ends inside PixelData (7FE0,0010)" in response.json()["detail"]
    assert await env.blob_keys(f"objects/{package_id}/") == []
    assert await env.usage(institution) == 0


async def test_implicit_vr_files_are_accepted(env: StorageEnv) -> None:
    institution = env.institution()
    package_id = await env.create_package(institution)
    dicom = make_dicom(implicit=True)

    response = await env.upload_raw(institution, package_id, dicom.data)

    assert response.status_code == 201, response.text
    (instance,) = response.json()["instances"]
    stored = await env.client.get(
        f"/storage/v1/objects/{instance['id']}", headers=env.auth(institution)
    )
    assert stored.content == dicom.data


@pytest.mark.parametrize("name", sorted(EXPECTED_PDF))
async def test_broken_pdf_is_refused_with_its_reason_and_nothing_is_kept(
    pg_env: StorageEnv, name: str
) -> None:
    env = pg_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    status, phrase = EXPECTED_PDF[name]

    response = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files(
            [("ok.pdf", make_pdf()), (name, broken_pdf_files()[name])],
            patient_id="P-1",
            patient_name="Doe^Jane",
        ),
    )

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["part"] == name
    assert phrase in response.json()["detail"]
    assert await env.blob_keys(f"objects/{package_id}/") == []
    assert await env.usage(institution) == 0
    assert await env.count_rows("upload_batches") == 0


@pytest.fixture
async def small_pdf_env(pg_backend: Backend, tmp_path: Path) -> AsyncIterator[StorageEnv]:
    async with storage_env(pg_backend, tmp_path, pdf_limit_bytes=4096) as environment:
        yield environment


async def test_a_pdf_above_the_limit_is_413_and_one_below_is_stored(
    small_pdf_env: StorageEnv,
) -> None:
    env = small_pdf_env
    institution = env.institution()
    package_id = await env.create_package(institution)
    small = make_pdf("small")
    large = make_pdf("x" * 5000)
    fields = {"patient_id": "P-1", "patient_name": "Doe^Jane"}

    refused = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("large.pdf", large)], **fields),
    )
    accepted = await env.client.post(
        f"/storage/v1/packages/{package_id}/documents",
        headers=env.auth(institution),
        **multipart_files([("small.pdf", small)], **fields),
    )

    assert refused.status_code == 413
    assert refused.json()["type"] == "urn:hds:problem:pdf-too-large"
    assert refused.json()["part"] == "large.pdf"
    assert "4096 bytes" in refused.json()["detail"]
    assert accepted.status_code == 201, accepted.text
    assert await env.usage(institution) == len(small)
    assert len(await env.blob_keys(f"objects/{package_id}/")) == 1


async def _probe_in_chunks(data: bytes, size: int) -> tuple[str, bytes]:
    """The probe's verdict on ``data`` cut into ``size``-byte chunks, and what it passes on."""

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), size):
            yield data[start : start + size]

    probe = DicomProbe(label="f", index=0, limit=1024 * 1024)
    source = chunks()
    header = None
    async for chunk in source:
        header = probe.feed(chunk)
        if header is not None:
            break
    if header is None:
        header = probe.finish()
    passed = b"".join([chunk async for chunk in probe.rest(source)])
    return header.sop_instance_uid, passed


def _pydicom_testdata(name: str) -> bytes:
    path = pydicom.data.get_testdata_file(name)
    assert isinstance(path, str), name
    return Path(path).read_bytes()


@pytest.mark.parametrize("size", [1, 3, 8, 131, 4096, 1 << 20])
async def test_the_verdict_does_not_depend_on_chunking(size: int) -> None:
    from hds_common.errors import ProblemError

    files = {
        "good": make_dicom(rows=16, columns=16).data,
        "implicit": make_dicom(rows=16, columns=16, implicit=True).data,
        "deflated": _pydicom_testdata("image_dfl.dcm"),
        "encapsulated": _pydicom_testdata("JPEG2000.dcm"),
        "big-endian": _pydicom_testdata("MR_small_bigendian.dcm"),
        # Nested sequences, no pixel data (refused for its meta, after the whole walk).
        "sequences": _pydicom_testdata("rtplan.dcm"),
    }
    for name, data in files.items():
        whole = await _verdict(data, len(data))
        assert await _verdict(data, size) == whole, name
    for name, data in broken_dicom_files().items():
        with pytest.raises(ProblemError) as whole_error:
            await _probe_in_chunks(data, len(data) or 1)
        with pytest.raises(ProblemError) as chunked_error:
            await _probe_in_chunks(data, size)
        assert chunked_error.value.detail == whole_error.value.detail, name


async def _verdict(data: bytes, size: int) -> str:
    from hds_common.errors import ProblemError

    try:
        uid, passed = await _probe_in_chunks(data, size)
    except ProblemError as exc:
        return f"{exc.status} {exc.detail}"
    assert passed == data
    return f"accepted {uid}"


async def test_a_deflated_header_that_expands_past_the_limit_is_refused_in_bounded_memory() -> None:
    """A 64 MiB private element compresses to a few KiB: the probe stops inflating once
    the header passes its limit instead of inflating it all."""
    import tracemalloc

    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from hds_common.errors import ProblemError

    dataset = pydicom.dcmread(io.BytesIO(make_dicom().data))
    dataset.add_new(0x00091010, "LO", "HDS")
    dataset.add_new(0x00091001, "OB", b"\0" * (64 << 20))
    dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    del dataset
    data = buffer.getvalue()
    assert len(data) < 256 * 1024

    tracemalloc.start()
    try:
        with pytest.raises(ProblemError) as refused:
            await _probe_in_chunks(data, 65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert refused.value.status == 415
    assert "exceeds 1048576 bytes" in str(refused.value.detail)
    assert peak < 8 * 1024 * 1024
