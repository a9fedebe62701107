"""Minting of every JWT in the suite: account tokens (login/refresh) and DLX tokens.

Only ES256 is ever produced; verifiers accept only ES256 (``hds_common.tokens``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from jose import jwt

from hds_auth.signing.keyring import Keyring
from hds_common.tokens import ACCOUNT_AUDIENCE, DLX_AUDIENCE

__all__ = ["IssuedToken", "TokenIssuer"]

SIGNING_ALGORITHM = "ES256"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: int
    expires_in: int


class TokenIssuer:
    def __init__(
        self,
        keyring: Keyring,
        *,
        issuer: str,
        access_ttl: int,
    ) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self.access_ttl = access_ttl

    def access_token(
        self,
        *,
        account_id: uuid.UUID,
        role: str,
        session_id: uuid.UUID,
        grant: str | None,
        key_session_id: str | None,
        now: int | None = None,
    ) -> IssuedToken:
        """An account token; ``grant`` names the key session (held by storage) that holds
        the user's private key until the token expires, and carries its secret. No key
        travels in the token."""
        issued_at = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "sub": str(account_id),
            "roles": [role],
            # The refresh-token family: lets password change keep this session only.
            "sid": str(session_id),
        }
        if grant is not None and key_session_id is not None:
            claims["grant"] = grant
            claims["ksid"] = key_session_id
        return self._sign(
            claims, audience=ACCOUNT_AUDIENCE, issued_at=issued_at, ttl=self.access_ttl
        )

    def dlx_token(
        self,
        *,
        code_id: str,
        package_id: str,
        grant: str,
        key_session_id: str,
        ttl: int,
        now: int | None = None,
    ) -> IssuedToken:
        """A DLX token for a validated access code; ``grant`` (the package key session's
        grant, from storage through the codes service) is passed through untouched."""
        issued_at = int(time.time()) if now is None else now
        claims = {"sub": code_id, "pkg": package_id, "grant": grant, "ksid": key_session_id}
        return self._sign(claims, audience=DLX_AUDIENCE, issued_at=issued_at, ttl=ttl)

    def _sign(
        self, claims: dict[str, Any], *, audience: str, issued_at: int, ttl: int
    ) -> IssuedToken:
        key = self.keyring.current()
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": audience,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + ttl,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            payload, key.private_pem, algorithm=SIGNING_ALGORITHM, headers={"kid": key.kid}
        )
        return IssuedToken(token=str(token), expires_at=issued_at + ttl, expires_in=ttl)
