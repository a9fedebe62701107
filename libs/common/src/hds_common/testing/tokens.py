"""A test-only token issuer with the same JWT shape as the identity service, so one
service's tests can run without starting the identity service."""

from __future__ import annotations

import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jwt

from hds_common.tokens import ACCOUNT_AUDIENCE, StaticKeys

__all__ = ["TestIssuer"]


class TestIssuer:
    __test__ = False  # not a pytest class

    def __init__(self, issuer: str = "hds-auth", kid: str = "test-key-1") -> None:
        self.issuer = issuer
        self.kid = kid
        self._private = ec.generate_private_key(ec.SECP256R1())
        private_pem = self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_pem = self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self._signing_jwk = jwk.construct(private_pem, algorithm="ES256").to_dict()
        public = jwk.construct(public_pem, algorithm="ES256").to_dict()
        self.jwks: dict[str, Any] = {"keys": [{**public, "kid": kid, "use": "sig", "alg": "ES256"}]}

    def keys(self) -> StaticKeys:
        return StaticKeys(self.jwks)

    def mint(
        self,
        sub: str,
        *,
        audience: str = ACCOUNT_AUDIENCE,
        roles: list[str] | None = None,
        grant: str | None = None,
        ttl: int = 900,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": audience,
            "sub": sub,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "roles": roles or [],
            **claims,
        }
        if grant is not None:
            payload["grant"] = grant
        return str(
            jwt.encode(payload, self._signing_jwk, algorithm="ES256", headers={"kid": self.kid})
        )
