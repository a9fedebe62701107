"""Authentication of internal service-to-service calls.

A calling service sends ``X-HDS-Service-Token: v1.<service>.<expiry>.<mac>`` where the MAC is
HMAC-SHA256 over ``v1.<service>.<expiry>`` with the suite's internal secret. It is not a
JWT on purpose: the identity service is the only JWT issuer, and this token proves only
"one of our services, recently". Receivers accept it only on ``/internal`` routes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Header

from hds_common.errors import Unauthorized

__all__ = [
    "SERVICE_TOKEN_HEADER",
    "mint_service_token",
    "require_service",
    "verify_service_token",
]

SERVICE_TOKEN_HEADER = "X-HDS-Service-Token"
_LIFETIME_SECONDS = 120
_VERSION = "v1"


def _mac(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def mint_service_token(secret: str, service: str, *, now: float | None = None) -> str:
    if not secret:
        raise ValueError("the internal secret is not configured")
    if "." in service:
        raise ValueError("service names cannot contain dots")
    expiry = int((now or time.time()) + _LIFETIME_SECONDS)
    message = f"{_VERSION}.{service}.{expiry}"
    return f"{message}.{_mac(secret.encode(), message)}"


def verify_service_token(secret: str, token: str | None, *, now: float | None = None) -> str:
    """Return the calling service's name, or raise :class:`Unauthorized`."""
    if not secret or not token:
        raise Unauthorized("internal service token missing", slug="service-token-invalid")
    # Headers arrive decoded as latin-1; a valid token is ASCII only, and comparing
    # non-ASCII strings in constant time is not possible (compare_digest refuses them).
    if not token.isascii():
        raise Unauthorized("internal service token malformed", slug="service-token-invalid")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _VERSION:
        raise Unauthorized("internal service token malformed", slug="service-token-invalid")
    version, service, expiry, mac = parts
    expected = _mac(secret.encode(), f"{version}.{service}.{expiry}")
    if not hmac.compare_digest(expected, mac):
        raise Unauthorized("internal service token invalid", slug="service-token-invalid")
    if not expiry.isdigit() or int(expiry) < (now or time.time()):
        raise Unauthorized("internal service token expired", slug="service-token-invalid")
    return service


def require_service(secret_getter: Callable[[], str]) -> Callable[..., str]:
    """Dependency factory: the route is for the suite's own services only."""

    def dependency(
        token: Annotated[str | None, Header(alias=SERVICE_TOKEN_HEADER)] = None,
    ) -> str:
        return verify_service_token(secret_getter(), token)

    return dependency
