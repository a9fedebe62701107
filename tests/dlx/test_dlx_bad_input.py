"""Regression test of bad input the property-based tests (test_dlx_fuzz.py) found
answered against the standard: ``tokentfa`` answered a JSON body that is not UTF-8 with
FastAPI's 400, where DIN/TS 19455 wants 401 for every failure but an expired code."""

from __future__ import annotations

import httpx
import pytest
from dlx_harness import World

from hds_common.errors import PROBLEM_CONTENT_TYPE


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
