"""Forged and altered tokens are rejected by hds_common.tokens.TokenVerifier holding this
service's real JWKS, and by this service's own protected routes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwt

from hds_common.errors import Unauthorized
from hds_common.tokens import TokenVerifier
from tests.auth.support import Accounts, AuthApp, bearer

ISSUER = "hds-auth-test"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(sub: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": "hds-account",
        "sub": sub,
        "roles": ["admin"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


class Forger:
    """Builds tokens: with the service's real signing key (bad claims), or without it."""

    def __init__(self, private_pem: str, kid: str, public_jwk: dict[str, Any]) -> None:
        self.private_pem = private_pem
        self.kid = kid
        self.public_jwk = public_jwk

    def signed(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return str(
            jwt.encode(
                claims, self.private_pem, algorithm="ES256", headers={"kid": kid or self.kid}
            )
        )

    def alg_none(self, claims: dict[str, Any]) -> str:
        header = {"alg": "none", "typ": "JWT", "kid": self.kid}
        return f"{_segment(header)}.{_segment(claims)}."

    def hs256_with(self, secret: bytes, claims: dict[str, Any]) -> str:
        # Built by hand: python-jose itself refuses to HMAC with an asymmetric key.
        signing_input = (
            f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': self.kid})}.{_segment(claims)}"
        )
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def public_pem(self) -> bytes:
        private = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        return private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


Kit = tuple[Forger, TokenVerifier, dict[str, Any], str]


@pytest.fixture
async def kit(auth: AuthApp, accounts: Accounts) -> Kit:
    account = await accounts.active()
    tokens = await accounts.login(account)
    jwks = await auth.jwks()
    current = auth.runtime.keyring.current()
    [public_jwk] = [key for key in jwks["keys"] if key["kid"] == current.kid]
    return (
        Forger(current.private_pem, current.kid, public_jwk),
        await auth.verifier(),
        tokens,
        account.id,
    )


def _signed_by_a_foreign_key(claims: dict[str, Any], *, kid: str) -> str:
    """ES256 like the service, but with a fresh key the service never published."""
    foreign_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return str(jwt.encode(claims, foreign_pem, algorithm="ES256", headers={"kid": kid}))


def _tamper(token: str, change: Callable[[dict[str, Any]], None]) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(claims)
    return f"{header}.{_segment(claims)}.{signature}"


FORGERIES: dict[str, Callable[[Forger, dict[str, Any], str], str]] = {
    "alg none": lambda f, _t, sub: f.alg_none(_claims(sub)),
    "alg none, empty kid": lambda _f, _t, sub: (
        f"{_segment({'alg': 'none'})}.{_segment(_claims(sub))}."
    ),
    "HS256 keyed with the public key PEM": lambda f, _t, sub: f.hs256_with(
        f.public_pem(), _claims(sub)
    ),
    "HS256 keyed with the public JWK": lambda f, _t, sub: f.hs256_with(
        json.dumps(f.public_jwk).encode(), _claims(sub)
    ),
    "expired": lambda f, _t, sub: f.signed(
        _claims(
            sub,
            iat=int(time.time()) - 1200,
            nbf=int(time.time()) - 1200,
            exp=int(time.time()) - 120,
        )
    ),
    "not yet valid": lambda f, _t, sub: f.signed(
        _claims(sub, nbf=int(time.time()) + 600, exp=int(time.time()) + 1200)
    ),
    "no expiry": lambda f, _t, sub: f.signed(_claims(sub, exp=None)),
    "wrong audience": lambda f, _t, sub: f.signed(_claims(sub, aud="hds-dlx")),
    "foreign audience": lambda f, _t, sub: f.signed(_claims(sub, aud="someone-else")),
    "wrong issuer": lambda f, _t, sub: f.signed(_claims(sub, iss="https://evil.example")),
    "unknown kid, real key": lambda f, _t, sub: f.signed(_claims(sub), kid="not-a-known-kid"),
    "unknown kid, foreign key": lambda _f, _t, sub: _signed_by_a_foreign_key(
        _claims(sub), kid="attacker-key"
    ),
    "real kid, foreign key": lambda f, _t, sub: _signed_by_a_foreign_key(_claims(sub), kid=f.kid),
    "tampered roles": lambda _f, tokens, _sub: _tamper(
        tokens["access_token"], lambda c: c.update(roles=["admin"])
    ),
    "tampered subject": lambda _f, tokens, _sub: _tamper(
        tokens["access_token"], lambda c: c.update(sub=str(uuid.uuid4()))
    ),
    "tampered expiry": lambda _f, tokens, _sub: _tamper(
        tokens["access_token"], lambda c: c.update(exp=c["exp"] + 86400)
    ),
    "signature stripped": lambda _f, tokens, _sub: tokens["access_token"].rsplit(".", 1)[0] + ".",
    "garbage": lambda _f, _t, _sub: "this.is.not-a-token",
}


async def test_the_genuine_token_verifies(kit: Kit) -> None:
    _forger, verifier, tokens, sub = kit
    claims = await verifier.verify(tokens["access_token"], audience="hds-account")
    assert claims.sub == sub


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_token_is_rejected_by_the_verifier(kit: Kit, name: str) -> None:
    forger, verifier, tokens, sub = kit
    token = FORGERIES[name](forger, tokens, sub)
    with pytest.raises(Unauthorized) as caught:
        await verifier.verify(token, audience="hds-account")
    assert caught.value.slug == "invalid-token"


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_forged_token_is_rejected_by_the_service_routes(
    auth: AuthApp, kit: Kit, name: str
) -> None:
    forger, _verifier, tokens, sub = kit
    token = FORGERIES[name](forger, tokens, sub)
    headers = bearer(token)
    me = await auth.client.get("/auth/v1/me", headers=headers)
    assert me.status_code == 401
    assert me.json()["type"] == "urn:hds:problem:invalid-token"
    assert "invalid_token" in me.headers["www-authenticate"]
    rotate = await auth.client.post("/auth/v1/admin/signing-keys/rotate", headers=headers)
    assert rotate.status_code == 401


async def test_a_dlx_token_is_not_an_account_token(auth: AuthApp, kit: Kit) -> None:
    _forger, verifier, _tokens, _sub = kit
    from hds_common.service_auth import SERVICE_TOKEN_HEADER, mint_service_token

    minted = await auth.client.post(
        "/internal/v1/dlx-tokens",
        json={
            "package_id": "pkg-1",
            "code_id": "code-1",
            "grant": "opaque-grant",
            "key_session_id": "cd" * 16,
        },
        headers={
            SERVICE_TOKEN_HEADER: mint_service_token(
                auth.runtime.settings.suite.internal_secret.get_secret_value(), "dlx"
            )
        },
    )
    dlx_token = minted.json()["token"]
    with pytest.raises(Unauthorized):
        await verifier.verify(dlx_token, audience="hds-account")
    me = await auth.client.get("/auth/v1/me", headers=bearer(dlx_token))
    assert me.status_code == 401


async def test_missing_or_malformed_authorization_is_401(auth: AuthApp) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = await auth.client.get("/auth/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
