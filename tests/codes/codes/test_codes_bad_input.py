"""Regression tests of bad input the property-based tests (test_codes_fuzz.py) found
answered with 500, or passed on to storage as a path: each is now a 4xx problem and
stores nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from hds_codes.codes.schemas import MAX_OFFSET
from hds_codes.models import AccessCode
from tests.codes.support import Harness, assert_problem

pytestmark = pytest.mark.postgres

CODE_ROUTES = [
    ("GET", "{id}"),
    ("POST", "{id}/reactivate"),
    ("POST", "{id}/expire"),
    ("POST", "{id}/revoke"),
    ("GET", "{id}/qr.svg?code=AAAA-AAAA-AAAA"),
    ("GET", "{id}/qr.png?code=AAAA-AAAA-AAAA"),
    ("GET", "{id}/sheet.pdf?code=AAAA-AAAA-AAAA"),
]


async def _codes_of(codes: Harness, institution_id: str) -> int:
    async with codes.runtime.session_maker() as session:
        count = await session.scalar(
            select(func.count()).where(AccessCode.institution_id == institution_id)
        )
    return int(count or 0)


@pytest.mark.parametrize(("method", "route"), CODE_ROUTES)
@pytest.mark.parametrize("code_id", ["a%00b", "%1b%5B31m", "x%7F"])
async def test_code_ids_with_control_characters_are_refused(
    codes: Harness, method: str, route: str, code_id: str
) -> None:
    institution = codes.account()
    url = f"/codes/v1/codes/{route.format(id=code_id)}"
    response = await codes.client.request(method, url, headers=codes.auth(institution))
    assert_problem(response, 422, "validation-error")


@pytest.mark.parametrize("package_id", ["a\x00b", "line\nbreak", "\x7f"])
async def test_package_ids_with_control_characters_are_refused(
    codes: Harness, package_id: str
) -> None:
    institution = codes.account()
    headers = codes.auth(institution)
    key_requests = codes.hood.key_requests
    issued = await codes.client.post(
        "/codes/v1/codes",
        json={"package_id": package_id, "birth_date": "19700131"},
        headers=headers,
    )
    assert_problem(issued, 422, "validation-error")
    listed = await codes.client.get(
        "/codes/v1/codes", params={"package_id": package_id}, headers=headers
    )
    assert_problem(listed, 422, "validation-error")
    assert codes.hood.key_requests == key_requests
    assert await _codes_of(codes, institution.id) == 0


async def test_a_package_id_is_one_path_segment_for_storage(codes: Harness) -> None:
    """``../packages/<id>`` used to reach the package ``<id>`` at storage (httpx
    resolves dot segments) and stored a code for a package id that does not exist."""
    institution = codes.account()
    package = codes.package(institution)
    response = await codes.client.post(
        "/codes/v1/codes",
        json={"package_id": f"../packages/{package.id}", "birth_date": "19700131"},
        headers=codes.auth(institution),
    )
    assert_problem(response, 404, "package-not-found")
    assert await _codes_of(codes, institution.id) == 0


async def test_offsets_beyond_bigint_are_refused(codes: Harness) -> None:
    institution = codes.account()
    headers = codes.auth(institution)
    await codes.issue(institution)
    too_far = await codes.client.get(
        "/codes/v1/codes", params={"offset": MAX_OFFSET + 1}, headers=headers
    )
    assert_problem(too_far, 422, "validation-error")
    farthest = await codes.client.get(
        "/codes/v1/codes", params={"offset": MAX_OFFSET}, headers=headers
    )
    assert farthest.status_code == 200, farthest.text
    assert farthest.json()["items"] == []
    assert farthest.json()["total"] == 1


@pytest.mark.parametrize("parameter", ["created_from", "created_to"])
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"])
async def test_times_outside_the_utc_calendar_are_refused(
    codes: Harness, parameter: str, value: str
) -> None:
    institution = codes.account()
    response = await codes.client.get(
        "/codes/v1/codes", params={parameter: value}, headers=codes.auth(institution)
    )
    body = assert_problem(response, 422, "invalid-date")
    assert body["parameter"] == parameter
