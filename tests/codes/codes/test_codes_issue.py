"""Issuing codes, storing them, QR codes and carrier sheets (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import io
import re
import zlib

import pytest
import segno
from PIL import Image
from sqlalchemy import text

from hds_codes.codes import service
from hds_codes.lookup import LookupKey
from hds_codes.slots import slot_aad, slot_secret
from hds_codes.values import generate_code, normalise_code
from hds_common.crypto import Argon2Params, derive_kek, unwrap_key
from hds_common.key_provider import FileKeyProvider
from hds_common.testing.tokens import TestIssuer
from tests.codes.support import PUBLIC_BASE, Harness, assert_problem

pytestmark = pytest.mark.postgres

CODE_SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")


async def test_issue_answers_code_link_expiry_and_printable_links(codes: Harness) -> None:
    institution = codes.account(code_validity_days=45)
    package = codes.package(institution)
    response = await codes.client.post(
        "/codes/v1/codes",
        json={"package_id": package.id, "birth_date": "19700131"},
        headers=codes.auth(institution),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    code, code_id = body["code"], body["id"]
    assert CODE_SHAPE.match(code)
    assert body["package_id"] == package.id
    assert body["link"] == f"{PUBLIC_BASE}/c/{code}"
    assert body["validity_days"] == 45
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert expires == codes.clock.now + dt.timedelta(days=45)
    base = f"{PUBLIC_BASE}/codes/v1/codes/{code_id}"
    assert body["qr_svg"] == f"{base}/qr.svg?code={code}"
    assert body["qr_png"] == f"{base}/qr.png?code={code}"
    assert body["sheet_pdf"] == f"{base}/sheet.pdf?code={code}"
    # The package key came from storage, released against the institution's own grant.
    assert codes.hood.key_requests == 1


@pytest.mark.parametrize("days", [30, 90])
async def test_requested_validity_within_range_is_used(codes: Harness, days: int) -> None:
    issued = await codes.issue(validity_days=days)
    assert issued.body["validity_days"] == days
    expires = dt.datetime.fromisoformat(issued.body["expires_at"])
    assert expires == codes.clock.now + dt.timedelta(days=days)


@pytest.mark.parametrize("days", [0, 29, 91, 365])
async def test_validity_outside_30_to_90_days_is_refused(codes: Harness, days: int) -> None:
    institution = codes.account()
    package = codes.package(institution)
    response = await codes.client.post(
        "/codes/v1/codes",
        json={"package_id": package.id, "birth_date": "19700131", "validity_days": days},
        headers=codes.auth(institution),
    )
    body = assert_problem(response, 422, "validity-out-of-range")
    assert (body["minimum"], body["maximum"]) == (30, 90)
    assert codes.hood.key_requests == 0


async def test_institution_without_a_setting_gets_the_default_validity(codes: Harness) -> None:
    issued = await codes.issue(codes.account(code_validity_days=None))
    assert issued.body["validity_days"] == 30


async def test_birth_date_is_accepted_in_both_forms(codes: Harness) -> None:
    issued = await codes.issue(birth_date="1970-01-31")
    assert (await codes.validate(issued.code, "19700131")).status_code == 200
    issued = await codes.issue(birth_date="19851224")
    assert (await codes.validate(issued.code, "1985-12-24")).status_code == 200


@pytest.mark.parametrize("birth_date", ["1970-02-30", "31.01.1970", "tomorrow", "2999-01-01"])
async def test_invalid_birth_date_is_refused(codes: Harness, birth_date: str) -> None:
    institution = codes.account()
    package = codes.package(institution)
    response = await codes.client.post(
        "/codes/v1/codes",
        json={"package_id": package.id, "birth_date": birth_date},
        headers=codes.auth(institution),
    )
    assert_problem(response, 422, "invalid-birth-date")


async def test_missing_fields_are_a_validation_problem(codes: Harness) -> None:
    institution = codes.account()
    response = await codes.client.post(
        "/codes/v1/codes", json={"birth_date": "19700131"}, headers=codes.auth(institution)
    )
    assert_problem(response, 422, "validation-error")


async def test_only_institutions_with_a_key_grant_issue_codes(codes: Harness) -> None:
    institution = codes.account()
    package = codes.package(institution)
    body = {"package_id": package.id, "birth_date": "19700131"}
    patient = codes.account(role="patient")

    response = await codes.client.post("/codes/v1/codes", json=body)
    assert_problem(response, 401, "missing-token")
    response = await codes.client.post("/codes/v1/codes", json=body, headers=codes.auth(patient))
    assert_problem(response, 403, "institution-only")
    response = await codes.client.post(
        "/codes/v1/codes", json=body, headers=codes.auth(institution, grant=False)
    )
    assert_problem(response, 401, "grant-required")
    forged = TestIssuer().mint(institution.id, roles=["institution"])
    response = await codes.client.post(
        "/codes/v1/codes", json=body, headers={"Authorization": f"Bearer {forged}"}
    )
    assert_problem(response, 401, "invalid-token")
    assert codes.hood.key_requests == 0


async def test_packages_of_others_and_unknown_packages_are_not_found(codes: Harness) -> None:
    owner, other = codes.account(), codes.account()
    package = codes.package(owner)
    for package_id in (package.id, "no-such-package"):
        response = await codes.client.post(
            "/codes/v1/codes",
            json={"package_id": package_id, "birth_date": "19700131"},
            headers=codes.auth(other),
        )
        assert_problem(response, 404, "package-not-found")


async def test_the_code_is_stored_only_as_keyed_hash_and_key_slot(codes: Harness) -> None:
    issued = await codes.issue(birth_date="19621109")
    normal = normalise_code(issued.code)
    async with codes.runtime.session_maker() as session:
        row = (
            (
                await session.execute(
                    text("SELECT * FROM access_codes WHERE id = :id"), {"id": issued.id}
                )
            )
            .mappings()
            .one()
        )
    dump = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for value in row.values()
    )
    for secret in (normal, issued.code, normal.lower(), "19621109", "1962-11-09"):
        assert secret.encode() not in dump
    assert issued.package.key not in dump

    lookup = LookupKey(FileKeyProvider().secret(str(codes.settings.lookup_secret_file)))
    assert row["lookup_hash"] == lookup.code_hash(normal)
    assert len(row["kdf_salt"]) == 16
    # The slot opens with exactly Argon2id(code + birth date) and the row's own AAD.
    params = Argon2Params(row["kdf_time_cost"], row["kdf_memory_kib"], row["kdf_parallelism"])
    kek = derive_kek(slot_secret(normal, dt.date(1962, 11, 9)), bytes(row["kdf_salt"]), params)
    aad = slot_aad(issued.id, issued.package.id)
    assert unwrap_key(kek, bytes(row["wrapped_key"]), aad) == issued.package.key


async def test_a_code_that_exists_already_is_drawn_again(
    codes: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = normalise_code((await codes.issue()).code)
    fresh = generate_code()
    draws = iter([taken, taken, fresh])
    monkeypatch.setattr(service, "generate_code", lambda: next(draws))
    assert normalise_code((await codes.issue()).code) == fresh

    monkeypatch.setattr(service, "generate_code", lambda: taken)
    institution = codes.account()
    response = await codes.client.post(
        "/codes/v1/codes",
        json={"package_id": codes.package(institution).id, "birth_date": "19700131"},
        headers=codes.auth(institution),
    )
    assert_problem(response, 503, "service-unavailable")


async def test_lookup_secret_file_is_created_private_and_reused(codes: Harness) -> None:
    path = codes.settings.lookup_secret_file
    assert path.stat().st_mode & 0o777 == 0o600
    assert FileKeyProvider().secret(str(path)) == FileKeyProvider().secret(str(path))


# -- QR codes and carrier sheets -----------------------------------------------------------


async def test_qr_svg_and_png_encode_the_portal_link(codes: Harness) -> None:
    issued = await codes.issue()
    headers = codes.auth(issued.institution)
    link = issued.body["link"]

    svg = await codes.client.get(
        f"/codes/v1/codes/{issued.id}/qr.svg", params={"code": issued.code}, headers=headers
    )
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    assert svg.headers["cache-control"] == "no-store"
    assert svg.content.startswith(b"<?xml")
    assert b"viewBox" in svg.content

    # Read the PNG's modules back and compare them with the QR code of the link.
    png = await codes.client.get(
        f"/codes/v1/codes/{issued.id}/qr.png",
        params={"code": normalise_code(issued.code).lower()},
        headers=headers,
    )
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    expected = segno.make_qr(link, error="m", boost_error=False)
    image = Image.open(io.BytesIO(png.content)).convert("1")
    size = len(expected.matrix)
    scale = image.width // (size + 8)
    assert image.width == image.height == (size + 8) * scale
    pixels = image.load()
    assert pixels is not None
    modules = [
        [
            pixels[(col + 4) * scale + scale // 2, (row + 4) * scale + scale // 2] == 0
            for col in range(size)
        ]
        for row in range(size)
    ]
    assert modules == [[bool(value) for value in row] for row in expected.matrix]


async def test_qr_and_sheet_need_the_right_code_and_the_issuing_institution(
    codes: Harness,
) -> None:
    issued = await codes.issue()
    other = await codes.issue()
    for name in ("qr.svg", "qr.png", "sheet.pdf"):
        url = f"/codes/v1/codes/{issued.id}/{name}"
        owner = codes.auth(issued.institution)
        response = await codes.client.get(url, params={"code": other.code}, headers=owner)
        assert_problem(response, 404, "code-not-found")
        response = await codes.client.get(url, params={"code": "not a code"}, headers=owner)
        assert_problem(response, 404, "code-not-found")
        response = await codes.client.get(
            url, params={"code": issued.code}, headers=codes.auth(other.institution)
        )
        assert_problem(response, 404, "code-not-found")
        response = await codes.client.get(url, headers=owner)
        assert_problem(response, 422, "validation-error")
        response = await codes.client.get(url, params={"code": issued.code})
        assert_problem(response, 401, "missing-token")


def _pdf_text(pdf: bytes) -> bytes:
    parts = []
    for match in re.finditer(rb"/FlateDecode.*?stream\r?\n(.*?)endstream", pdf, re.S):
        parts.append(zlib.decompressobj().decompress(match.group(1)))
    return b"\n".join(parts)


async def test_carrier_sheet_shows_institution_code_qr_expiry_and_instructions(
    codes: Harness,
) -> None:
    institution = codes.account(name="Radiologie am Münsterplatz")
    issued = await codes.issue(institution)
    response = await codes.client.get(
        f"/codes/v1/codes/{issued.id}/sheet.pdf",
        params={"code": issued.code},
        headers=codes.auth(institution),
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["cache-control"] == "no-store"
    assert issued.code not in response.headers["content-disposition"]
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    assert b"/Subtype /Image" in pdf  # the QR code
    content = _pdf_text(pdf)
    expires = dt.datetime.fromisoformat(issued.body["expires_at"])
    for expected in (
        "Radiologie am Münsterplatz",
        issued.code,
        issued.body["link"],
        f"Valid until {expires:%Y-%m-%d %H:%M} UTC",
        "For patients",
        "For referring physicians",
    ):
        assert expected.encode("latin-1") in content, expected
