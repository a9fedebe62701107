"""Listing, searching, expiring, reactivating and revoking codes (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from hds_codes.values import normalise_code
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token
from tests.codes.support import Harness, assert_problem

pytestmark = pytest.mark.postgres


async def _list(codes: Harness, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await codes.client.get("/codes/v1/codes", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


async def test_list_and_search_by_package_state_created_range_and_code(codes: Harness) -> None:
    institution = codes.account()
    headers = codes.auth(institution)
    package = codes.package(institution)
    t0 = codes.clock.now
    first = await codes.issue(institution, package=package)
    codes.clock.advance(days=2)
    second = await codes.issue(institution, package=package)
    codes.clock.advance(days=2)
    third = await codes.issue(institution)
    fourth = await codes.issue(institution)
    someone_elses = await codes.issue(codes.account())

    page = await _list(codes, headers)
    # Newest first, nothing of other institutions.
    assert page["total"] == 4
    assert set(_ids(page)) == {first.id, second.id, third.id, fourth.id}
    assert _ids(page)[-1] == first.id
    assert someone_elses.id not in _ids(page)
    item = page["items"][-1]
    assert item["state"] == "active"
    assert item["package_id"] == package.id
    assert "code" not in item  # the service does not know it any more

    page = await _list(codes, headers, package_id=package.id)
    assert _ids(page) == [second.id, first.id]

    page = await _list(
        codes,
        headers,
        created_from=(t0 + dt.timedelta(days=1)).isoformat(),
        created_to=(t0 + dt.timedelta(days=3)).isoformat(),
    )
    assert _ids(page) == [second.id]
    # Without a zone the range is read as UTC.
    naive = (t0 + dt.timedelta(days=3)).replace(tzinfo=None).isoformat()
    assert set(_ids(await _list(codes, headers, created_from=naive))) == {third.id, fourth.id}

    # Exact code value, typed any way: found through the lookup hash.
    typed = normalise_code(third.code).lower()
    assert _ids(await _list(codes, headers, code=typed)) == [third.id]
    assert _ids(await _list(codes, headers, code=someone_elses.code)) == []
    response = await codes.client.get("/codes/v1/codes", params={"code": "nope"}, headers=headers)
    assert_problem(response, 422, "invalid-code-format")

    # States.
    await codes.client.post(f"/codes/v1/codes/{first.id}/revoke", headers=headers)
    await codes.client.post(f"/codes/v1/codes/{second.id}/expire", headers=headers)
    for _ in range(5):
        assert (await codes.validate(third.code, "19991231")).status_code == 401
    assert _ids(await _list(codes, headers, state="revoked")) == [first.id]
    assert _ids(await _list(codes, headers, state="expired")) == [second.id]
    assert _ids(await _list(codes, headers, state="locked")) == [third.id]
    assert _ids(await _list(codes, headers, state="active")) == [fourth.id]
    response = await codes.client.get("/codes/v1/codes", params={"state": "x"}, headers=headers)
    assert_problem(response, 422, "validation-error")

    # Paging.
    everything = _ids(await _list(codes, headers))
    page = await _list(codes, headers, limit=2, offset=1)
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert _ids(page) == everything[1:3]


async def test_get_shows_the_state_and_only_to_the_issuer(codes: Harness) -> None:
    issued = await codes.issue()
    response = await codes.client.get(
        f"/codes/v1/codes/{issued.id}", headers=codes.auth(issued.institution)
    )
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "active"
    assert body["failed_attempts"] == 0
    assert body["locked_until"] is None
    response = await codes.client.get(
        f"/codes/v1/codes/{issued.id}", headers=codes.auth(codes.account())
    )
    assert_problem(response, 404, "code-not-found")
    response = await codes.client.get(
        f"/codes/v1/codes/{issued.id}", headers=codes.auth(codes.account(role="patient"))
    )
    assert_problem(response, 403, "institution-only")


async def test_natural_expiry_and_reactivation(codes: Harness) -> None:
    issued = await codes.issue(validity_days=30)
    headers = codes.auth(issued.institution)
    codes.clock.advance(days=30, seconds=1)
    response = await codes.validate(issued.code, issued.birth_date)
    assert_problem(response, 403, "code-expired")

    response = await codes.client.post(
        f"/codes/v1/codes/{issued.id}/reactivate", json={"validity_days": 60}, headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "active"
    assert body["validity_days"] == 60
    assert dt.datetime.fromisoformat(body["expires_at"]) == codes.clock.now + dt.timedelta(days=60)
    assert dt.datetime.fromisoformat(body["reactivated_at"]) == codes.clock.now
    assert (await codes.validate(issued.code, issued.birth_date)).status_code == 200


async def test_expire_now_then_reactivate_with_the_institution_default(codes: Harness) -> None:
    institution = codes.account(code_validity_days=75)
    issued = await codes.issue(institution, validity_days=30)
    headers = codes.auth(institution)
    response = await codes.client.post(f"/codes/v1/codes/{issued.id}/expire", headers=headers)
    assert response.status_code == 200
    assert response.json()["state"] == "expired"
    assert_problem(await codes.validate(issued.code, issued.birth_date), 403, "code-expired")
    # Wrong answers on an expired code stay wrong answers.
    assert_problem(await codes.validate(issued.code, "19000101"), 401, "invalid-code")

    response = await codes.client.post(f"/codes/v1/codes/{issued.id}/reactivate", headers=headers)
    assert response.status_code == 200
    assert response.json()["validity_days"] == 75
    assert (await codes.validate(issued.code, issued.birth_date)).status_code == 200


@pytest.mark.parametrize("days", [29, 91])
async def test_reactivation_validity_must_be_in_range(codes: Harness, days: int) -> None:
    issued = await codes.issue()
    response = await codes.client.post(
        f"/codes/v1/codes/{issued.id}/reactivate",
        json={"validity_days": days},
        headers=codes.auth(issued.institution),
    )
    assert_problem(response, 422, "validity-out-of-range")


async def test_reactivation_unlocks_a_locked_code(codes: Harness) -> None:
    issued = await codes.issue()
    for _ in range(5):
        await codes.validate(issued.code, "20000101")
    assert_problem(await codes.validate(issued.code, issued.birth_date), 401, "invalid-code")
    response = await codes.client.post(
        f"/codes/v1/codes/{issued.id}/reactivate", headers=codes.auth(issued.institution)
    )
    assert response.json()["state"] == "active"
    assert (await codes.validate(issued.code, issued.birth_date)).status_code == 200


async def test_revocation_is_final(codes: Harness) -> None:
    issued = await codes.issue()
    headers = codes.auth(issued.institution)
    response = await codes.client.post(f"/codes/v1/codes/{issued.id}/revoke", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "revoked"
    assert body["revoked_at"] is not None
    # A revoked code answers like an unknown one, right answers included.
    assert_problem(await codes.validate(issued.code, issued.birth_date), 401, "invalid-code")
    again = await codes.client.post(f"/codes/v1/codes/{issued.id}/revoke", headers=headers)
    assert again.status_code == 200
    assert again.json()["revoked_at"] == body["revoked_at"]
    for action in ("reactivate", "expire"):
        response = await codes.client.post(f"/codes/v1/codes/{issued.id}/{action}", headers=headers)
        assert_problem(response, 409, "code-revoked")


@pytest.mark.parametrize("action", ["reactivate", "expire", "revoke"])
async def test_nobody_but_the_issuer_changes_a_code(codes: Harness, action: str) -> None:
    issued = await codes.issue()
    other = codes.account()
    response = await codes.client.post(
        f"/codes/v1/codes/{issued.id}/{action}", headers=codes.auth(other)
    )
    assert_problem(response, 404, "code-not-found")
    response = await codes.client.post(
        f"/codes/v1/codes/{issued.id}/{action}", headers=codes.auth(codes.account(role="patient"))
    )
    assert_problem(response, 403, "institution-only")
    response = await codes.client.post(f"/codes/v1/codes/{issued.id}/{action}")
    assert_problem(response, 401, "missing-token")
    # Untouched.
    assert (await codes.validate(issued.code, issued.birth_date)).status_code == 200


async def test_issue_and_reactivation_report_the_expiry_for_retention(codes: Harness) -> None:
    issued = await codes.issue(validity_days=30)
    package_id = issued.package.id
    reported = codes.hood.retention[package_id]
    assert reported == [codes.clock.now + dt.timedelta(days=30)]
    codes.clock.advance(days=40)
    response = await codes.client.post(
        f"/codes/v1/codes/{issued.id}/reactivate",
        json={"validity_days": 60},
        headers=codes.auth(issued.institution),
    )
    assert response.status_code == 200, response.text
    assert reported[-1] == codes.clock.now + dt.timedelta(days=60)
    # Expiring and revoking report too: until when the package's codes were valid.
    codes.clock.advance(days=1)
    expired = await codes.client.post(
        f"/codes/v1/codes/{issued.id}/expire", headers=codes.auth(issued.institution)
    )
    assert expired.status_code == 200
    assert reported[-1] == codes.clock.now
    second = await codes.issue(issued.institution, package=issued.package, validity_days=45)
    assert reported[-1] == codes.clock.now + dt.timedelta(days=45)
    codes.clock.advance(days=2)
    revoked = await codes.client.post(
        f"/codes/v1/codes/{second.id}/revoke", headers=codes.auth(issued.institution)
    )
    assert revoked.status_code == 200
    assert reported[-1] == codes.clock.now


async def test_storage_asks_until_when_a_packages_codes_are_valid(codes: Harness) -> None:
    issued = await codes.issue(validity_days=30)
    later = await codes.issue(issued.institution, package=issued.package, validity_days=60)
    url = f"/internal/v1/packages/{issued.package.id}/validity"
    service = {
        SERVICE_TOKEN_HEADER: mint_service_token(
            codes.settings.suite.internal_secret.get_secret_value(), "storage"
        )
    }

    answer = await codes.client.get(url, headers=service)

    assert answer.status_code == 200, answer.text
    valid_until = dt.datetime.fromisoformat(answer.json()["valid_until"])
    assert valid_until == codes.clock.now + dt.timedelta(days=60)
    await codes.client.post(
        f"/codes/v1/codes/{later.id}/revoke", headers=codes.auth(issued.institution)
    )
    answer = await codes.client.get(url, headers=service)
    assert dt.datetime.fromisoformat(answer.json()["valid_until"]) == codes.clock.now + (
        dt.timedelta(days=30)
    )
    unknown = await codes.client.get("/internal/v1/packages/nothing-here/validity", headers=service)
    assert unknown.json() == {"valid_until": None}
    assert (await codes.client.get(url)).status_code == 401


async def test_a_retired_package_takes_no_code_and_no_reactivation(codes: Harness) -> None:
    issued = await codes.issue()
    codes.hood.retired.add(issued.package.id)
    response = await codes.client.post(
        f"/codes/v1/codes/{issued.id}/reactivate", headers=codes.auth(issued.institution)
    )
    assert_problem(response, 409, "package-retired")
    body = {"package_id": issued.package.id, "birth_date": "19700131"}
    response = await codes.client.post(
        "/codes/v1/codes", json=body, headers=codes.auth(issued.institution)
    )
    assert_problem(response, 409, "package-retired")
    # The refused reactivation changed nothing.
    listed = await codes.client.get(
        f"/codes/v1/codes/{issued.id}", headers=codes.auth(issued.institution)
    )
    assert listed.json()["reactivated_at"] is None
