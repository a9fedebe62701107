"""Internal routes: service token required; DLX tokens; accounts; notifications."""

from __future__ import annotations

import uuid

import pytest

from hds_common.crypto import b64d
from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token
from hds_common.testing.smtp import SmtpTestServer
from tests.auth.support import Accounts, AuthApp, bearer

MIB = 1024 * 1024


@pytest.fixture
def service_headers(auth: AuthApp) -> dict[str, str]:
    secret = auth.runtime.settings.suite.internal_secret.get_secret_value()
    return {SERVICE_TOKEN_HEADER: mint_service_token(secret, "dlx")}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/internal/v1/dlx-tokens"),
        ("GET", "/internal/v1/accounts/00000000-0000-4000-8000-000000000000"),
        ("GET", "/internal/v1/accounts?email=someone@example.org"),
        ("POST", "/internal/v1/notifications"),
    ],
)
@pytest.mark.parametrize(
    "token",
    [None, "v1.dlx.9999999999.deadbeef", mint_service_token("another-secret", "dlx")],
    ids=["missing", "forged-mac", "other-secret"],
)
async def test_internal_routes_need_a_valid_service_token(
    auth: AuthApp, method: str, path: str, token: str | None
) -> None:
    headers = {SERVICE_TOKEN_HEADER: token} if token else {}
    response = await auth.client.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json()["type"] == "urn:hds:problem:service-token-invalid"


async def test_dlx_token(auth: AuthApp, service_headers: dict[str, str]) -> None:
    response = await auth.client.post(
        "/internal/v1/dlx-tokens",
        json={
            "package_id": "pkg-42",
            "code_id": "code-7",
            "grant": "sealed-package-grant",
            "key_session_id": "0123456789abcdef0123456789abcdef",
        },
        headers=service_headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["expires_in"] == 600
    verifier = await auth.verifier()
    claims = await verifier.verify(body["token"], audience="hds-dlx")
    assert claims.sub == "code-7"
    assert claims.pkg == "pkg-42"
    assert claims.grant == "sealed-package-grant"
    assert claims.ksid == "0123456789abcdef0123456789abcdef"
    assert claims.aud == "hds-dlx"
    assert claims.iss == "hds-auth-test"
    assert claims.iat is not None
    assert claims.exp - claims.iat == 600
    assert claims.jti


async def test_dlx_token_lifetime(auth: AuthApp, service_headers: dict[str, str]) -> None:
    body = {"package_id": "p", "code_id": "c", "grant": "g", "key_session_id": "ab" * 16}
    short = await auth.client.post(
        "/internal/v1/dlx-tokens", json={**body, "ttl_seconds": 120}, headers=service_headers
    )
    assert short.json()["expires_in"] == 120
    too_long = await auth.client.post(
        "/internal/v1/dlx-tokens", json={**body, "ttl_seconds": 86400}, headers=service_headers
    )
    assert too_long.status_code == 422
    assert too_long.json()["type"] == "urn:hds:problem:ttl-out-of-range"
    missing = await auth.client.post(
        "/internal/v1/dlx-tokens", json={"package_id": "p"}, headers=service_headers
    )
    assert missing.status_code == 422


async def test_internal_account(
    auth: AuthApp, accounts: Accounts, service_headers: dict[str, str]
) -> None:
    patient = await accounts.active()
    response = await auth.client.get(f"/internal/v1/accounts/{patient.id}", headers=service_headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "email",
        "role",
        "public_key",
        "quota_bytes",
        "deletion_mode",
        "active",
        "notifications",
        "accept_shares",
        "name",
        "default_code_validity_days",
    }
    assert body["id"] == patient.id
    assert body["role"] == "patient"
    assert body["quota_bytes"] == 1024 * MIB
    assert body["deletion_mode"] == "automatic"
    assert body["active"] is True
    assert body["notifications"] is True
    assert body["accept_shares"] is False  # off until the holder turns it on
    assert body["default_code_validity_days"] is None
    assert len(b64d(body["public_key"])) == 32

    institution = await accounts.privileged(role="institution", name="Radiology East")
    body = (
        await auth.client.get(f"/internal/v1/accounts/{institution.id}", headers=service_headers)
    ).json()
    assert body["name"] == "Radiology East"
    assert body["default_code_validity_days"] == 30

    unknown = await auth.client.get(
        f"/internal/v1/accounts/{uuid.uuid4()}", headers=service_headers
    )
    assert unknown.status_code == 404


async def test_internal_account_by_email(
    auth: AuthApp, accounts: Accounts, service_headers: dict[str, str]
) -> None:
    patient = await accounts.active()
    by_id = await auth.client.get(f"/internal/v1/accounts/{patient.id}", headers=service_headers)

    found = await auth.client.get(
        "/internal/v1/accounts",
        params={"email": f" {patient.email.upper()} "},
        headers=service_headers,
    )

    assert found.status_code == 200, found.text
    assert found.json() == by_id.json()
    unknown = await auth.client.get(
        "/internal/v1/accounts", params={"email": "nobody@example.org"}, headers=service_headers
    )
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:hds:problem:account-not-found"
    for params in ({}, {"email": "a\nb@example.org"}, {"email": "x" * 321}):
        refused = await auth.client.get(
            "/internal/v1/accounts", params=params, headers=service_headers
        )
        assert refused.status_code == 422, params
        assert refused.headers["content-type"] == "application/problem+json"


async def test_internal_account_tells_whether_it_receives_shares(
    auth: AuthApp, accounts: Accounts, service_headers: dict[str, str]
) -> None:
    async def record(email: str) -> dict[str, object]:
        response = await auth.client.get(
            "/internal/v1/accounts", params={"email": email}, headers=service_headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    registered = await accounts.register()
    assert (await record(registered.email))["active"] is False
    await accounts.activate(registered.email)
    assert (await record(registered.email))["active"] is True

    accepting = await accounts.active()
    assert (await record(accepting.email))["accept_shares"] is False
    await auth.client.patch(
        "/auth/v1/me/settings",
        json={"accept_shares": True},
        headers=bearer(await accounts.login(accepting)),
    )
    assert (await record(accepting.email))["accept_shares"] is True
    assert (await record(accepting.email))["active"] is True

    admin = await accounts.privileged(role="admin")
    disabled = await auth.client.patch(
        f"/auth/v1/admin/accounts/{registered.id}",
        json={"disabled": True},
        headers=bearer(await accounts.login(admin)),
    )
    assert disabled.status_code == 200
    assert (await record(registered.email))["active"] is False


async def test_notifications_respect_the_setting(
    auth: AuthApp, accounts: Accounts, service_headers: dict[str, str], smtp_server: SmtpTestServer
) -> None:
    account = await accounts.active()
    before = len(smtp_server.messages_to(account.email))
    note = {"account_id": account.id, "subject": "New results", "text": "A study arrived."}
    sent = await auth.client.post("/internal/v1/notifications", json=note, headers=service_headers)
    assert sent.status_code == 202
    assert sent.json() == {"sent": True}
    mails = smtp_server.messages_to(account.email)
    assert len(mails) == before + 1
    assert mails[-1]["Subject"] == "New results"
    assert "A study arrived." in mails[-1].get_content()

    tokens = await accounts.login(account)
    await auth.client.patch(
        "/auth/v1/me/settings",
        json={"notifications": False},
        headers=bearer(tokens),
    )
    muted = await auth.client.post("/internal/v1/notifications", json=note, headers=service_headers)
    assert muted.status_code == 202
    assert muted.json() == {"sent": False}
    assert len(smtp_server.messages_to(account.email)) == before + 1

    unknown = await auth.client.post(
        "/internal/v1/notifications",
        json={**note, "account_id": str(uuid.uuid4())},
        headers=service_headers,
    )
    assert unknown.status_code == 404


async def test_internal_routes_are_in_the_openapi_document(auth: AuthApp) -> None:
    schema = (await auth.client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/auth/v1/register",
        "/auth/v1/activate",
        "/auth/v1/activation/resend",
        "/auth/v1/invitation",
        "/auth/v1/invitation/accept",
        "/auth/v1/login",
        "/auth/v1/refresh",
        "/auth/v1/logout",
        "/auth/v1/password/reset",
        "/auth/v1/password/change",
        "/auth/v1/me",
        "/auth/v1/me/settings",
        "/auth/v1/public-keys/{account_id}",
        "/auth/v1/admin/invitations",
        "/auth/v1/admin/invitations/{invitation_id}",
        "/auth/v1/admin/invitations/{invitation_id}/resend",
        "/auth/v1/admin/accounts/{account_id}",
        "/.well-known/jwks.json",
        "/auth/v1/jwks.json",
        "/internal/v1/dlx-tokens",
        "/internal/v1/accounts/{account_id}",
        "/internal/v1/accounts",
        "/internal/v1/notifications",
    ):
        assert path in paths, path
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
