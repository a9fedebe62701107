"""Portal links: with X-DICOM-LINK-EXCHANGE the DLX token answer, without it the SPA."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.support import SPA_URL, Upstreams

CODE = "ABCD-EFGH-JKMN"


@pytest.mark.parametrize("header_value", ["", "1", "anything at all"])
async def test_portal_link_with_dlx_header_answers_like_the_token_endpoint(
    gateway: httpx.AsyncClient, upstreams: Upstreams, header_value: str
) -> None:
    headers = {"X-DICOM-LINK-EXCHANGE": header_value}
    direct = await gateway.get(f"/dlx/v1/token/{CODE}", headers=headers)
    via_path = await gateway.get(f"/c/{CODE}", headers=headers)
    via_query = await gateway.get("/", params={"code": CODE}, headers=headers)
    assert direct.status_code == 200, direct.text
    for response in (via_path, via_query):
        assert response.status_code == direct.status_code
        assert response.headers["content-type"] == direct.headers["content-type"]
        assert response.content == direct.content
    assert direct.json()["value"] == CODE
    # The DLX service itself answered, at its token endpoint, without the portal query.
    dlx = upstreams.states["dlx"]
    assert [seen["path"] for seen in dlx.requests] == [f"/dlx/v1/token/{CODE}"] * 3
    assert via_query.json()["query"] == ""


async def test_portal_link_codes_are_passed_safely(gateway: httpx.AsyncClient) -> None:
    headers = {"X-DICOM-LINK-EXCHANGE": "1"}
    response = await gateway.get("/", params={"code": "ab cd?x&y=1"}, headers=headers)
    assert response.status_code == 200
    assert response.json()["value"] == "ab cd?x&y=1"
    # A slash stays encoded: the upstream never sees a path outside the token endpoint.
    escape = await gateway.get("/", params={"code": "../../internal/v1/x"}, headers=headers)
    seen = escape.json()
    assert seen["service"] == "dlx"
    assert seen["raw_path"] == "/dlx/v1/token/..%2F..%2Finternal%2Fv1%2Fx"
    missing = await gateway.get("/", headers=headers)
    assert missing.status_code == 400
    assert missing.json()["type"] == "urn:hds:problem:missing-code"


async def test_portal_link_without_header_redirects_to_the_spa(
    gateway: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    via_path = await gateway.get(f"/c/{CODE}")
    assert via_path.status_code in (302, 303)
    assert via_path.headers["location"] == f"{SPA_URL}/c/{CODE}"
    assert via_path.headers["cache-control"] == "no-store"
    assert via_path.headers["referrer-policy"] == "no-referrer"
    via_query = await gateway.get("/", params={"code": CODE})
    assert via_query.status_code in (302, 303)
    assert via_query.headers["location"] == f"{SPA_URL}/?code={CODE}"
    root = await gateway.get("/")
    assert root.headers["location"] == f"{SPA_URL}/"
    odd = await gateway.get("/c/a%20b%3Cscript%3E")
    assert odd.headers["location"] == f"{SPA_URL}/c/a%20b%3Cscript%3E"
    assert upstreams.states["dlx"].requests == []
