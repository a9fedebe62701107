"""Smoke test of the embedded default: the whole life of a code on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.codes.support import Neighbourhood, assert_problem, codes_harness


async def test_life_of_a_code_on_sqlite(tmp_path: Path, hood: Neighbourhood) -> None:
    database_url = f"sqlite:///{tmp_path / 'codes.db'}"
    secret_file = tmp_path / "keys" / "codes-lookup.key"
    async with codes_harness(database_url, secret_file, hood, migrate_on_start=True) as codes:
        issued = await codes.issue(birth_date="1990-03-04", validity_days=60)
        headers = codes.auth(issued.institution)

        response = await codes.validate(issued.code.lower(), "19900304")
        assert response.status_code == 200, response.text
        assert hood.session_key(response.json()["grant"]) == issued.package.key

        patient = codes.account(role="patient")
        response = await codes.client.post(
            "/codes/v1/import",
            json={"code": issued.code, "birth_date": issued.birth_date},
            headers=codes.auth(patient),
        )
        assert response.status_code == 200, response.text
        assert hood.slot_calls[0].account_id == patient.id

        # Concurrent wrong answers: exactly five are evaluated, then the code is locked.
        responses = await asyncio.gather(
            *(codes.validate(issued.code, f"1980010{i % 9 + 1}") for i in range(20))
        )
        assert {r.status_code for r in responses} == {401}
        assert codes.metric("rejected") == 5
        assert codes.metric("locked") == 15
        page = (
            await codes.client.get("/codes/v1/codes", params={"state": "locked"}, headers=headers)
        ).json()
        assert [item["id"] for item in page["items"]] == [issued.id]
        assert_problem(await codes.validate(issued.code, issued.birth_date), 401, "invalid-code")

        codes.clock.advance(minutes=15)
        assert (await codes.validate(issued.code, issued.birth_date)).status_code == 200
        response = await codes.client.post(f"/codes/v1/codes/{issued.id}/revoke", headers=headers)
        assert response.json()["state"] == "revoked"
        assert_problem(await codes.validate(issued.code, issued.birth_date), 401, "invalid-code")

        sheet = await codes.client.get(
            f"/codes/v1/codes/{issued.id}/sheet.pdf", params={"code": issued.code}, headers=headers
        )
        assert sheet.status_code == 200
        assert sheet.content.startswith(b"%PDF-")
    assert secret_file.exists()
