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

from hds_common.errors import ServiceTokenInvalid

__all__ = [
    "SERVICE_TOKEN_HEADER",
    "mint_service_token",
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
        raise ServiceTokenInvalid("internal service token missing")
    # Headers arrive decoded as latin-1; a valid token is ASCII only, and comparing
    # non-ASCII strings in constant time is not possible (compare_digest refuses them).
    if not token.isascii():
        raise ServiceTokenInvalid("internal service token malformed")
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != _VERSION:
        raise ServiceTokenInvalid("internal service token malformed")
    version, service, expiry, mac = parts
    expected = _mac(secret.encode(), f"{version}.{service}.{expiry}")
    if not hmac.compare_digest(expected, mac):
        raise ServiceTokenInvalid("internal service token invalid")
    if not expiry.isdigit() or int(expiry) < (now or time.time()):
        raise ServiceTokenInvalid("internal service token expired")
    return service
