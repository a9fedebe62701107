"""Forged tokens are refused by every service that checks tokens, reached directly on
its own port (not only behind the gateway): no service trusts what it cannot verify."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from jose import jwt

from hds_common.testing.dicom import make_dicom
from hds_common.testing.tokens import TestIssuer
from tests.e2e.support import RunningSuite

pytestmark = pytest.mark.slow

# (service, path, audience of the tokens the route accepts)
PROTECTED = [
    ("gateway", "/storage/v1/studies", "hds-account"),
    ("auth", "/auth/v1/me", "hds-account"),
    ("codes", "/codes/v1/codes", "hds-account"),
    ("storage", "/storage/v1/studies", "hds-account"),
    ("dlx", "/dlx/v1/list", "hds-dlx"),
]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def genuine(suite: RunningSuite) -> dict[str, str]:
    """A valid token of each audience, from the real identity service."""
    client = httpx.Client(base_url=suite.gateway_url, timeout=30)
    credentials = suite.institution
    account = client.post(
        "/auth/v1/login", json={"email": credentials["email"], "password": credentials["password"]}
    ).json()["access_token"]
    # A DLX token needs a code: issue one for a fresh package of the suite's institution.
    headers = {"Authorization": f"Bearer {account}"}
    package = client.post("/storage/v1/packages", json={}, headers=headers).json()["id"]
    upload = client.post(
        f"/storage/v1/packages/{package}/instances",
        content=make_dicom(seed=5).data,
        headers={**headers, "Content-Type": "application/dicom"},
    )
    assert upload.status_code in (200, 201), upload.text
    assert client.post(f"/storage/v1/packages/{package}/complete", headers=headers).is_success
    issued = client.post(
        "/codes/v1/codes", json={"package_id": package, "birth_date": "19700101"}, headers=headers
    )
    assert issued.status_code == 201, issued.text
    dlx = client.post(
        f"/dlx/v1/tokentfa/{issued.json()['code']}",
        json={"tfaAnswer": [{"questionId": "1", "answer": "19700101"}]},
    )
    assert dlx.status_code == 200
    return {"hds-account": account, "hds-dlx": dlx.text}


def forgeries(suite: RunningSuite, genuine_token: str) -> dict[str, str]:
    claims = jwt.get_unverified_claims(genuine_token)
    header = jwt.get_unverified_header(genuine_token)
    kid = header["kid"]
    now = int(time.time())
    jwks = httpx.get(f"{suite.gateway_url}/.well-known/jwks.json", timeout=10).json()
    public_jwk = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    pem = sorted(Path(suite.env["HDS_AUTH_SIGNING_KEY_DIR"]).glob("es256-*.pem"))[-1].read_text()

    def signed(changes: dict[str, object]) -> str:
        return str(jwt.encode({**claims, **changes}, pem, algorithm="ES256", headers={"kid": kid}))

    head, _, signature = genuine_token.split(".")
    return {
        "alg none": f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(claims)}.",
        "hs256 signed with the public key": str(
            jwt.encode(claims, json.dumps(public_jwk), algorithm="HS256", headers={"kid": kid})
        ),
        "expired": signed({"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}),
        "wrong audience": signed(
            {"aud": "hds-dlx" if claims["aud"] == "hds-account" else "hds-account"}
        ),
        "wrong issuer": signed({"iss": "someone-else"}),
        "unknown kid": TestIssuer(issuer=claims["iss"], kid="not-a-published-kid").mint(
            claims["sub"], audience=claims["aud"], roles=claims.get("roles", [])
        ),
        "tampered payload": f"{head}.{_b64({**claims, 'sub': 'another-account'})}.{signature}",
    }


@pytest.mark.parametrize(("service", "path", "audience"), PROTECTED)
def test_every_service_refuses_forged_tokens(
    suite: RunningSuite, genuine: dict[str, str], service: str, path: str, audience: str
) -> None:
    base = f"http://127.0.0.1:{suite.env[f'HDS_{service.upper()}_PORT']}"
    token = genuine[audience]
    control = httpx.get(base + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert control.status_code == 200, control.text
    results: dict[str, int] = {}
    for name, forged in forgeries(suite, token).items():
        answer = httpx.get(base + path, headers={"Authorization": f"Bearer {forged}"}, timeout=30)
        results[name] = answer.status_code
    assert results == dict.fromkeys(results, 401)


def test_internal_routes_refuse_calls_without_a_service_token(suite: RunningSuite) -> None:
    calls: list[tuple[str, str, Callable[[str], httpx.Response]]] = [
        ("auth", "/internal/v1/accounts/x", lambda url: httpx.get(url, timeout=10)),
        ("codes", "/internal/v1/validate", lambda url: httpx.post(url, json={}, timeout=10)),
        ("storage", "/internal/v1/usage/x", lambda url: httpx.get(url, timeout=10)),
    ]
    for service, path, call in calls:
        response = call(f"http://127.0.0.1:{suite.env[f'HDS_{service.upper()}_PORT']}{path}")
        assert response.status_code == 401, (service, response.text)
    # And the gateway never routes /internal at all.
    assert httpx.get(f"{suite.gateway_url}/internal/v1/usage/x", timeout=10).status_code == 404
