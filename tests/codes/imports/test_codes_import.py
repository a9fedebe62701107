"""Import of a code into an account: a key slot in storage, quota answers passed on."""

from __future__ import annotations

import pytest

from hds_codes.values import format_code, generate_code
from tests.codes.support import Harness, assert_problem

pytestmark = pytest.mark.postgres


async def test_import_adds_a_key_slot_for_the_caller(codes: Harness) -> None:
    issued = await codes.issue(birth_date="19660412")
    patient = codes.account(role="patient")
    response = await codes.client.post(
        "/codes/v1/import",
        json={"code": issued.code.replace("-", "").lower(), "birth_date": "1966-04-12"},
        headers=codes.auth(patient),
    )
    assert response.status_code == 200, response.text
    package = issued.package
    assert response.json() == {
        "package_id": package.id,
        "code_id": issued.id,
        "studies": 1,
        "documents": 0,
        "bytes": len(package.instances[0]),
    }
    # Storage got only the package key, sealed to it, for this account: no data moved.
    [call] = codes.hood.slot_calls
    assert call.account_id == patient.id
    assert call.key == package.key


async def test_any_role_can_import(codes: Harness) -> None:
    issued = await codes.issue()
    for role in ("referrer", "institution", "admin"):
        response = await codes.client.post(
            "/codes/v1/import",
            json={"code": issued.code, "birth_date": issued.birth_date},
            headers=codes.auth(codes.account(role=role)),
        )
        assert response.status_code == 200, role
    assert len(codes.hood.slot_calls) == 3


async def test_storage_quota_refusal_is_passed_on(codes: Harness) -> None:
    issued = await codes.issue()
    codes.hood.quota_exceeded = True
    response = await codes.client.post(
        "/codes/v1/import",
        json={"code": issued.code, "birth_date": issued.birth_date},
        headers=codes.auth(codes.account(role="patient")),
    )
    body = assert_problem(response, 507, "quota-exceeded")
    assert body["detail"] == "the studies do not fit into your quota"
    assert body["needed_bytes"] == 1234
    assert codes.hood.slot_calls == []


async def test_wrong_unknown_and_expired_codes_are_not_imported(codes: Harness) -> None:
    issued = await codes.issue(validity_days=30)
    headers = codes.auth(codes.account(role="patient"))
    for code, birth_date in ((issued.code, "19700102"), (format_code(generate_code()), "19700131")):
        response = await codes.client.post(
            "/codes/v1/import", json={"code": code, "birth_date": birth_date}, headers=headers
        )
        assert_problem(response, 401, "invalid-code")
    codes.clock.advance(days=31)
    response = await codes.client.post(
        "/codes/v1/import",
        json={"code": issued.code, "birth_date": issued.birth_date},
        headers=headers,
    )
    assert_problem(response, 403, "code-expired")
    assert codes.hood.slot_calls == []


async def test_import_input_is_checked(codes: Harness) -> None:
    headers = codes.auth(codes.account(role="patient"))
    response = await codes.client.post(
        "/codes/v1/import",
        json={"code": "ABCD-EFGH-JKM", "birth_date": "19700131"},
        headers=headers,
    )
    assert_problem(response, 422, "invalid-code-format")
    response = await codes.client.post(
        "/codes/v1/import",
        json={"code": format_code(generate_code()), "birth_date": "1970-31-01"},
        headers=headers,
    )
    assert_problem(response, 422, "invalid-birth-date")
    response = await codes.client.post(
        "/codes/v1/import", json={"code": format_code(generate_code())}, headers=headers
    )
    assert_problem(response, 422, "validation-error")
    response = await codes.client.post(
        "/codes/v1/import", json={"code": format_code(generate_code()), "birth_date": "19700131"}
    )
    assert_problem(response, 401, "missing-token")


async def test_import_failures_count_against_the_callers_address(codes: Harness) -> None:
    issued = await codes.issue()
    headers = codes.auth(codes.account(role="patient"))
    for _ in range(20):
        response = await codes.client.post(
            "/codes/v1/import",
            json={"code": format_code(generate_code()), "birth_date": "19700131"},
            headers=headers,
        )
        assert response.status_code == 401
    assert codes.delayed() == 0
    # Over the allowance the caller's address is slowed down, and then answered as usual.
    response = await codes.client.post(
        "/codes/v1/import",
        json={"code": issued.code, "birth_date": issued.birth_date},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert codes.delayed() == 1
