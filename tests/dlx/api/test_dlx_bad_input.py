"""Regression tests of bad input the property-based tests (test_dlx_fuzz.py) found
answered against the standard: ``tokentfa`` answered a JSON body that is not UTF-8 with
FastAPI's 400, where DIN/TS 19455 wants 401 for every failure but an expired code; and
values holding an encoded line break matched no route (404) on all three routes that
take a value."""

from __future__ import annotations

import httpx
import pytest

from hds_common.errors import PROBLEM_CONTENT_TYPE
from tests.dlx.support import World


@pytest.mark.parametrize(
    "body",
    [b"\xfe&\x0cu\xdf\xfe", b'{"tfaAnswer": "\xff"}', b"\xc3"],
    ids=["binary", "latin-1-in-json", "cut-utf-8"],
)
async def test_answers_that_are_not_utf8_are_a_failed_authentication(
    client: httpx.AsyncClient, world: World, body: bytes
) -> None:
    calls = len(world.codes.calls)
    response = await client.post(
        f"/dlx/v1/tokentfa/{world.code}",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:hds:problem:tfa-failed"
    # Refused before the code is looked up: no failed attempt counts against it.
    assert len(world.codes.calls) == calls


@pytest.mark.parametrize("value", ["AB%0ACD", "%C2%91%0A%F1%8B%B8%A7", "A/B%0A"])
async def test_values_with_line_breaks_get_the_routes_own_answers(
    client: httpx.AsyncClient, world: World, value: str
) -> None:
    token = await client.get(f"/dlx/v1/token/{value}")
    assert token.status_code == 200, token.text
    answers = {"tfaAnswer": [{"questionId": "1", "answer": "19700101"}]}
    tfa = await client.post(f"/dlx/v1/tokentfa/{value}", json=answers)
    assert tfa.status_code == 401, tfa.text
    assert tfa.json()["type"] == "urn:hds:problem:tfa-failed"
    download = await client.get(
        f"/dlx/v1/download/{value}",
        headers={"Authorization": f"Bearer {world.dlx_token(world.package)}"},
    )
    assert download.status_code == 400, download.text
    assert download.headers["content-type"] == PROBLEM_CONTENT_TYPE
