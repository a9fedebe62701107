"""Verification of the JWTs issued by the identity service.

Every service verifies bearer tokens itself (signature from the identity service's JWKS,
algorithm allow-list, ``exp``/``nbf``/``iss``/``aud``, at most 30 s clock skew) rather than
trusting a header set by the gateway.

Audiences: ``hds-account`` for account tokens (login), ``hds-dlx`` for DLX tokens minted
after a successful access-code validation. A DLX token is accepted only by DLX routes and
an account token only elsewhere, because each route asks for exactly one audience.

Session liveness: a token names its key session in the ``ksid`` claim. When a verifier
has a :class:`SessionLiveness` source it refuses a token whose session has ended
(logout, password reset, refresh-token reuse, disablement, code revocation or expiry),
asking the storage service, which holds the key sessions, at most once per session per
``HDS_SESSION_CHECK_SECONDS`` (5 s by default): a session ended at one service stops
working at every service within that time.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
from jose import jwt
from jose.exceptions import JOSEError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hds_common.errors import BadGateway, InvalidToken, MissingToken

__all__ = [
    "ACCOUNT_AUDIENCE",
    "ALLOWED_ALGORITHMS",
    "DLX_AUDIENCE",
    "JwksClient",
    "KeySource",
    "SessionLiveness",
    "StaticKeys",
    "StorageSessions",
    "TokenClaims",
    "TokenVerifier",
    "bearer_token",
]

ACCOUNT_AUDIENCE = "hds-account"
DLX_AUDIENCE = "hds-dlx"
ALLOWED_ALGORITHMS = ("ES256",)
MAX_LEEWAY_SECONDS = 30


class TokenClaims(BaseModel):
    """The claims a service may rely on once a token is verified."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: str
    iss: str
    aud: str | list[str]
    exp: int
    iat: int | None = None
    nbf: int | None = None
    jti: str | None = None
    roles: list[str] = Field(default_factory=list)
    # The unlocked key sealed to the storage service (opaque to everyone else).
    grant: str | None = None
    # For DLX tokens: the package the access code unlocked.
    pkg: str | None = None
    # The key session this token belongs to; it stops working when the session ends.
    ksid: str | None = None

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)


class KeySource(Protocol):
    async def get_key(self, kid: str) -> Mapping[str, Any] | None: ...


class StaticKeys:
    """A fixed JWKS, for tests and for services given keys by configuration."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = {key["kid"]: key for key in jwks.get("keys", []) if "kid" in key}

    async def get_key(self, kid: str) -> Mapping[str, Any] | None:
        return self._keys.get(kid)


class JwksClient:
    """The identity service's JWKS, cached; refetched on an unknown ``kid`` at most once
    per ``min_refresh_interval`` so that forged ``kid`` values cannot hammer it."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        min_refresh_interval: float = 30.0,
        max_age: float = 300.0,
    ) -> None:
        self._url = url
        self._client = client
        self._min_refresh_interval = min_refresh_interval
        self._max_age = max_age
        self._keys: dict[str, Mapping[str, Any]] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get_key(self, kid: str) -> Mapping[str, Any] | None:
        now = time.monotonic()
        stale = now - self._fetched_at > self._max_age
        if kid in self._keys and not stale:
            return self._keys[kid]
        if now - self._fetched_at >= self._min_refresh_interval or stale:
            await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> None:
        seen = self._fetched_at
        async with self._lock:
            if self._fetched_at != seen:
                return  # another task refreshed while this one waited
            try:
                response = await self._client.get(self._url, timeout=5.0)
                response.raise_for_status()
                keys = response.json().get("keys", [])
            except (httpx.HTTPError, ValueError):
                # Keep serving the keys we have; a token with an unknown kid still fails.
                self._fetched_at = time.monotonic()
                return
            self._keys = {key["kid"]: key for key in keys if isinstance(key, dict) and "kid" in key}
            self._fetched_at = time.monotonic()


class SessionLiveness(Protocol):
    async def is_live(self, session_id: str) -> bool:
        """Whether the key session still exists; raises on an unreachable source."""
        ...


class StorageSessions:
    """Liveness of key sessions as the storage service answers it
    (``GET /internal/v1/key-sessions/{id}``; ``client`` carries the service token)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def is_live(self, session_id: str) -> bool:
        response = await self._client.get(f"/internal/v1/key-sessions/{session_id}", timeout=5.0)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise httpx.HTTPStatusError(
            f"key session check answered {response.status_code}",
            request=response.request,
            response=response,
        )


# A session id is a random hex id; anything else in the claim is refused unasked.
_SESSION_ID_CHARS = frozenset("0123456789abcdef")
_LIVENESS_CACHE_SIZE = 10_000


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        keys: KeySource,
        algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS,
        leeway: int = MAX_LEEWAY_SECONDS,
        cache_size: int = 0,
        liveness: SessionLiveness | None = None,
        liveness_ttl: float = 5.0,
    ) -> None:
        """``cache_size`` > 0 remembers that many verified tokens (per audience) until they
        expire, so a client sending the same token again costs no signature check: an
        ES256 verification is the most expensive step of a proxied request.

        ``liveness``: where to ask whether a token's key session (``ksid``) is still live;
        an answer is remembered for ``liveness_ttl`` seconds, which bounds how long a
        token works after its session ended."""
        if leeway > MAX_LEEWAY_SECONDS:
            raise ValueError(f"clock skew allowance above {MAX_LEEWAY_SECONDS} s")
        self.issuer = issuer
        self.keys = keys
        self.algorithms = algorithms
        self.leeway = leeway
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], tuple[TokenClaims, str]] = OrderedDict()
        self._liveness = liveness
        self._liveness_ttl = liveness_ttl
        self._live: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    async def verify(self, token: str, *, audience: str) -> TokenClaims:
        """Verified claims of ``token`` for ``audience``, or :class:`InvalidToken`."""
        claims = await self._verified(token, audience=audience)
        await self._check_session(claims)
        return claims

    async def _check_session(self, claims: TokenClaims) -> None:
        if self._liveness is None or claims.ksid is None:
            # Only an identity service without the storage grant key mints tokens
            # without a key session; they unlock nothing (see docs).
            return
        session_id = claims.ksid
        if not session_id or len(session_id) > 64 or not set(session_id) <= _SESSION_ID_CHARS:
            raise _invalid("token session malformed")
        now = time.monotonic()
        cached = self._live.get(session_id)
        if cached is not None and now - cached[1] < self._liveness_ttl:
            live = cached[0]
        else:
            try:
                live = await self._liveness.is_live(session_id)
            except (httpx.HTTPError, OSError):
                # Fail closed: without the answer a logged-out token cannot be told apart.
                raise SessionStoreUnreachable() from None
            self._live[session_id] = (live, now)
            self._live.move_to_end(session_id)
            while len(self._live) > _LIVENESS_CACHE_SIZE:
                self._live.popitem(last=False)
        if not live:
            raise _invalid("the session of this token has ended")

    async def _verified(self, token: str, *, audience: str) -> TokenClaims:
        if self._cache_size <= 0:
            return (await self._verify(token, audience=audience))[0]
        entry = (token, audience)
        cached = self._cache.get(entry)
        if cached is not None:
            claims, kid = cached
            now = time.time()
            fresh = now <= claims.exp + self.leeway and (
                claims.nbf is None or claims.nbf - self.leeway <= now
            )
            # The key must still be published: a withdrawn key invalidates its tokens.
            if fresh and await self.keys.get_key(kid) is not None:
                self._cache.move_to_end(entry)
                return claims
            self._cache.pop(entry, None)
        claims, kid = await self._verify(token, audience=audience)
        self._cache[entry] = (claims, kid)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return claims

    async def _verify(self, token: str, *, audience: str) -> tuple[TokenClaims, str]:
        try:
            header = jwt.get_unverified_header(token)
        except JOSEError:
            raise _invalid("malformed token") from None
        algorithm = header.get("alg")
        # The allow-list stops alg=none and HS256-signed-with-the-public-key forgeries.
        if algorithm not in self.algorithms:
            raise _invalid("token algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _invalid("token has no key id")
        key = await self.keys.get_key(kid)
        if key is None:
            raise _invalid("token signed with an unknown key")
        try:
            payload = jwt.decode(
                token,
                dict(key),
                algorithms=[algorithm],
                audience=audience,
                issuer=self.issuer,
                options={
                    "leeway": self.leeway,
                    "require_exp": True,
                    "require_iss": True,
                    "require_aud": True,
                    "require_sub": True,
                },
            )
        except JOSEError as exc:
            raise _invalid(str(exc) or "invalid token") from None
        try:
            return TokenClaims.model_validate(payload), kid
        except ValidationError:
            raise _invalid("token claims malformed") from None


class SessionStoreUnreachable(BadGateway):
    slug = "storage-unavailable"

    def __init__(self) -> None:
        super().__init__("the storage service, which holds the sessions, cannot be reached")


def _invalid(detail: str) -> InvalidToken:
    return InvalidToken(detail)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header, or :class:`MissingToken`."""
    if not authorization:
        raise MissingToken("bearer token required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken("bearer token required")
    return token.strip()
