"""api_info, token/{value} and tokentfa/{value}."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from jose import jwt

from hds_common.tokens import DLX_AUDIENCE, TokenVerifier
from hds_dlx.config import Settings
from tests.dlx.support import World, dlx_client, dlx_settings, tokentfa

BIRTH_DATE_QUESTION = {
    "question": [
        {"text": "Wann ist Ihr Geburtsdatum?", "language": "de"},
        {"text": "What is your date of birth?", "language": "en"},
    ],
    "questionId": "1",
    "questionType": "PAT_BIRTH_DATE",
    "answerFormat": "DATE",
}


def _without_request_id(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() != "x-request-id"}


# --- api_info -----------------------------------------------------------------------------


async def test_api_info_describes_the_api_at_the_requested_origin(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/dlx/v1/api_info")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "dlxVersion": "v1",
        "vendorInformation": "HDS suite",
        "apiBasePath": "http://dlx.test/dlx/v1",
    }


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.evil.example"},
        {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Port": "8443",
            "X-Forwarded-Prefix": "/phish",
        },
        {"Host": "evil.example", "X-Forwarded-Host": "evil.example/phish?x="},
    ],
)
async def test_api_info_never_reflects_what_the_client_sends(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """apiBasePath comes from HDS_PUBLIC_BASE_URL (here http://dlx.test) alone: a forged
    Host would send a viewer, and with it the patient's birth date, elsewhere."""
    response = await client.get("/dlx/v1/api_info", headers=headers)
    assert response.json()["apiBasePath"] == "http://dlx.test/dlx/v1"
    questions = await client.get("/dlx/v1/token/ANY", headers=headers)
    assert questions.json()["apiInfo"][0]["apiBasePath"] == "http://dlx.test/dlx/v1"
    assert "evil" not in response.text + questions.text + str(questions.headers)


async def test_api_info_follows_the_public_base_url(world: World) -> None:
    settings = dlx_settings()
    settings.suite.public_base_url = "https://portal.example.org:8443/hds/"
    async with dlx_client(world, settings) as (client, _):
        response = await client.get("/dlx/v1/api_info")
    assert response.json()["apiBasePath"] == "https://portal.example.org:8443/hds/dlx/v1"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("https://dlx.example.com/api/dlx/v1/", "https://dlx.example.com/api/dlx/v1"),
        ("/portal/dlx/v1", "https://portal.example.org/portal/dlx/v1"),
    ],
)
async def test_api_info_public_base_path_override(
    world: World, override: str, expected: str
) -> None:
    settings = dlx_settings(public_base_path=override, vendor_information="Radiologie Mitte")
    settings.suite.public_base_url = "https://portal.example.org"
    async with dlx_client(world, settings) as (client, _):
        response = await client.get(
            "/dlx/v1/api_info",
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.example.org"},
        )
    assert response.json() == {
        "dlxVersion": "v1",
        "vendorInformation": "Radiologie Mitte",
        "apiBasePath": expected,
    }


def test_public_base_path_must_be_a_url_or_a_path() -> None:
    with pytest.raises(ValueError, match="absolute http"):
        dlx_settings(public_base_path="portal.example.org/dlx/v1")


# --- token/{value} -------------------------------------------------------------------------


async def test_token_answers_every_value_alike_without_looking_it_up(
    client: httpx.AsyncClient, world: World
) -> None:
    values = [
        world.code,
        world.code.lower().replace("-", ""),
        world.expired_code,
        "ZZZZ-ZZZZ-ZZZZ",  # unknown
        "not a code at all %21 äöü",
        "a/b/c",
        "",
        "X" * 5000,
    ]
    answers = []
    for value in values:
        response = await client.get(
            f"/dlx/v1/token/{value}", headers={"X-DICOM-LINK-EXCHANGE": "1"}
        )
        assert response.status_code == 200, value
        answers.append((response.content, _without_request_id(response.headers)))
    assert all(answer == answers[0] for answer in answers)
    # The header is not evaluated: without it the answer is the same.
    plain = await client.get(f"/dlx/v1/token/{world.code}")
    assert (plain.content, _without_request_id(plain.headers)) == answers[0]

    body = plain.json()
    assert body == {
        "apiInfo": [
            {
                "dlxVersion": "v1",
                "vendorInformation": "HDS suite",
                "apiBasePath": "http://dlx.test/dlx/v1",
            }
        ],
        "tfaQuestion": [BIRTH_DATE_QUESTION],
    }
    assert plain.headers["cache-control"] == "no-store"
    # No lookup means no timing difference between known and unknown codes.
    assert world.codes.calls == []


# --- tokentfa/{value} ------------------------------------------------------------------------


async def _claims(world: World, token: str) -> dict[str, Any]:
    verifier = TokenVerifier(issuer=world.issuer.issuer, keys=world.issuer.keys())
    await verifier.verify(token, audience=DLX_AUDIENCE)  # raises unless valid for DLX
    claims: dict[str, Any] = jwt.get_unverified_claims(token)
    return claims


async def test_tokentfa_answers_a_jwt_for_the_right_birth_date(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await tokentfa(client, world.code)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwt"
    assert response.headers["cache-control"] == "no-store"
    claims = await _claims(world, response.text)
    issued = world.codes.issued(world.code)
    assert claims["aud"] == DLX_AUDIENCE
    assert claims["sub"] == issued.code_id
    assert claims["pkg"] == world.package.id
    assert claims["grant"] == world.package.grant
    # The token names the code's key session: ending it ends the token.
    assert claims["ksid"] == issued.key_session_id
    assert claims["exp"] - claims["iat"] == 600  # HDS_DLX_TOKEN_TTL_SECONDS default
    assert world.codes.calls == [
        {"code": world.code, "birth_date": "1970-01-01", "client": "127.0.0.1"}
    ]
    assert world.auth.minted == [
        {
            "package_id": world.package.id,
            "code_id": issued.code_id,
            "grant": world.package.grant,
            "key_session_id": issued.key_session_id,
            "ttl_seconds": 600,
        }
    ]


@pytest.mark.parametrize(
    "body",
    [
        # As the standard's example writes it: numbers, not strings.
        {"tfaAnswer": [{"questionId": 1, "answer": 19700101}]},
        {"tfaAnswer": [{"questionId": "1", "answer": "1970-01-01"}]},
        {
            "tfaAnswer": [
                {"questionId": "2", "answer": "Dr. Bob"},
                {"questionId": "1", "answer": "19700101"},
            ]
        },
    ],
)
async def test_tokentfa_accepts_the_answer_in_the_forms_clients_send(
    client: httpx.AsyncClient, world: World, body: dict[str, Any]
) -> None:
    code = world.code.lower().replace("-", "")
    response = await client.post(f"/dlx/v1/tokentfa/{code}", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/jwt"


async def test_tokentfa_wrong_and_unknown_are_the_same_401(
    client: httpx.AsyncClient, world: World
) -> None:
    wrong = await tokentfa(client, world.code, "19700102")
    unknown = await tokentfa(client, "ZZZZ-ZZZZ-ZZZZ", "19700101")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")
    strip = ("request_id",)
    assert {k: v for k, v in wrong.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }
    assert wrong.json()["type"] == "urn:hds:problem:tfa-failed"


async def test_tokentfa_expired_code_is_403_only_when_the_answer_matches(
    client: httpx.AsyncClient, world: World
) -> None:
    right = await tokentfa(client, world.expired_code, "19700101")
    assert right.status_code == 403
    assert right.headers["content-type"] == "application/problem+json"
    assert right.json()["type"] == "urn:hds:problem:code-expired"

    wrong = await tokentfa(client, world.expired_code, "19991231")
    assert wrong.status_code == 401


async def test_tokentfa_locked_code_answers_401_even_with_the_right_answer(
    client: httpx.AsyncClient, world: World
) -> None:
    for _ in range(world.codes.max_failures):
        assert (await tokentfa(client, world.code, "20000101")).status_code == 401
    locked = await tokentfa(client, world.code, "19700101")
    assert locked.status_code == 401
    assert locked.headers["www-authenticate"].startswith("Bearer")
    # Every attempt reached codes (which counts failures per code and client).
    assert len(world.codes.calls) == world.codes.max_failures + 1
    assert {call["client"] for call in world.codes.calls} == {"127.0.0.1"}
    # Other codes are not affected.
    other = await tokentfa(client, world.other_code, "19800202")
    assert other.status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"tfaAnswer": []}', "application/json"),  # no answer
        (b'{"tfaAnswer": [{"questionId": "2", "answer": "19700101"}]}', "application/json"),
        (b'{"tfaAnswer": [{"questionId": "1"}]}', "application/json"),
        (b'{"tfaAnswer": [{"questionId": "1", "answer": "hello"}]}', "application/json"),
        (b'{"tfaAnswer": [{"questionId": "1", "answer": "19701301"}]}', "application/json"),
        (
            b'{"tfaAnswer": [{"questionId": "1", "answer": "19700101"},'
            b' {"questionId": "1", "answer": "19700102"}]}',
            "application/json",
        ),
        (b'{"tfaAnswer": {"questionId": "1", "answer": "19700101"}}', "application/json"),
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b"questionId=1&answer=19700101", "application/x-www-form-urlencoded"),
    ],
)
async def test_tokentfa_unreadable_or_missing_answers_are_401_without_asking_codes(
    client: httpx.AsyncClient, world: World, content: bytes, content_type: str
) -> None:
    response = await client.post(
        f"/dlx/v1/tokentfa/{world.code}",
        content=content,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:hds:problem:tfa-failed"
    assert world.codes.calls == []


async def test_tokentfa_values_no_code_can_have_are_401_without_asking_codes(
    client: httpx.AsyncClient, world: World
) -> None:
    for value in ("", "   ", "X" * 65):
        response = await tokentfa(client, value)
        assert response.status_code == 401, value
        assert response.json()["type"] == "urn:hds:problem:tfa-failed"
    assert world.codes.calls == []


async def test_tokentfa_ttl_setting_and_code_expiry_bound_the_token(world: World) -> None:
    soon = world.codes.issue(
        package_id=world.package.id,
        birth_date=dt.date(1970, 1, 1),
        grant=world.package.grant,
        expires_in=dt.timedelta(seconds=120),
    )
    short_grant = world.codes.issue(
        package_id=world.package.id,
        birth_date=dt.date(1970, 1, 1),
        grant=world.package.grant,
        grant_expires_in=dt.timedelta(seconds=90),
    )
    async with dlx_client(world, dlx_settings(token_ttl_seconds=300)) as (client, _):
        configured = await tokentfa(client, world.code)
        capped = await tokentfa(client, soon)
        grant_capped = await tokentfa(client, short_grant)
    assert configured.status_code == capped.status_code == grant_capped.status_code == 200
    configured_claims = await _claims(world, configured.text)
    assert configured_claims["exp"] - configured_claims["iat"] == 300
    capped_claims = await _claims(world, capped.text)
    assert 100 <= capped_claims["exp"] - capped_claims["iat"] <= 120
    grant_claims = await _claims(world, grant_capped.text)
    assert 70 <= grant_claims["exp"] - grant_claims["iat"] <= 90


def test_settings_come_from_hds_dlx_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDS_DLX_TOKEN_TTL_SECONDS", "120")
    monkeypatch.setenv("HDS_DLX_MAX_CONCURRENT_DOWNLOADS", "3")
    monkeypatch.setenv("HDS_DLX_BUSY_RETRY_AFTER_SECONDS", "4")
    monkeypatch.setenv("HDS_DLX_PUBLIC_BASE_PATH", "https://portal.example.org/dlx/v1")
    monkeypatch.setenv("HDS_DLX_STREAM_CLIENT", "httpx")
    settings = Settings()
    assert settings.token_ttl_seconds == 120
    assert settings.max_concurrent_downloads == 3
    assert settings.busy_retry_after_seconds == 4
    assert settings.public_base_path == "https://portal.example.org/dlx/v1"
    assert settings.stream_client == "httpx"
    for name in ("HDS_DLX_TOKEN_TTL_SECONDS", "HDS_DLX_MAX_CONCURRENT_DOWNLOADS"):
        monkeypatch.delenv(name)
    defaults = Settings()
    assert (defaults.token_ttl_seconds, defaults.max_concurrent_downloads) == (600, 8)
