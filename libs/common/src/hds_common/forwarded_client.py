"""The end client's address, as the gateway vouches for it to the services behind it.

Per-client limits (login failures, access code guesses) key on the client address. Behind
the gateway every request comes from the gateway's own address, so the gateway tells the
services who the client is. A bare ``X-Forwarded-For`` cannot carry that: any caller that
reaches a service's port could send one, and in a cluster the gateway's pod addresses
change, so an address allow-list either names the whole pod network (everyone believed)
or breaks on the next rollout. Instead the gateway sends

    X-HDS-Client: v1.<expiry>.<mac>.<proto>.<address>

where ``mac`` is HMAC-SHA256 under the suite's internal secret over a context string,
expiry, scheme and address. A service believes the address (and scheme) only when the
MAC verifies and the assertion has not expired; otherwise the peer address stands. Only
holders of the internal secret (the suite's own services) can vouch for an address, from
wherever they run. The context string keeps an assertion from ever passing as an
internal service token (``hds_common.service_auth``) and the other way round.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = [
    "CLIENT_HEADER",
    "ForwardedClientMiddleware",
    "mint_client_assertion",
    "verify_client_assertion",
]

CLIENT_HEADER = "X-HDS-Client"
_HEADER_KEY = CLIENT_HEADER.lower().encode("latin-1")
_VERSION = "v1"
_CONTEXT = "hds/forwarded-client/v1"
# Minted per request; long enough for clock skew between replicas, short for replays.
_LIFETIME_SECONDS = 120
_SCHEMES = frozenset({"http", "https"})


def _mac(secret: str, expiry: str, proto: str, address: str) -> str:
    message = f"{_CONTEXT}\x00{expiry}\x00{proto}\x00{address}".encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def mint_client_assertion(
    secret: str, *, address: str, proto: str, now: float | None = None
) -> str:
    """The header value vouching that the request comes from ``address`` over ``proto``."""
    if not secret:
        raise ValueError("the internal secret is not configured")
    if proto not in _SCHEMES:
        raise ValueError(f"unknown scheme {proto!r}")
    expiry = str(int((now if now is not None else time.time()) + _LIFETIME_SECONDS))
    return f"{_VERSION}.{expiry}.{_mac(secret, expiry, proto, address)}.{proto}.{address}"


def verify_client_assertion(
    secret: str, value: str | None, *, now: float | None = None
) -> tuple[str, str] | None:
    """``(address, proto)`` of a valid, unexpired assertion; ``None`` for anything else."""
    if not secret or not value:
        return None
    parts = value.split(".", 4)
    if len(parts) != 5 or parts[0] != _VERSION:
        return None
    _, expiry, mac, proto, address = parts
    if not expiry.isdigit() or proto not in _SCHEMES or not address:
        return None
    if not hmac.compare_digest(_mac(secret, expiry, proto, address), mac):
        return None
    if int(expiry) < (now if now is not None else time.time()):
        return None
    return address, proto


class ForwardedClientMiddleware:
    """Sets the request's client address and scheme from a valid ``X-HDS-Client``.

    Without one (or with a forged, expired or malformed one) the connection's peer stays
    the client, whatever ``X-Forwarded-For`` says. The header is removed either way, so
    nothing further down sees it."""

    def __init__(self, app: ASGIApp, *, secret: Callable[[], str]) -> None:
        self.app = app
        self._secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        values = [value for name, value in headers if name.lower() == _HEADER_KEY]
        if values:
            scope = dict(scope)
            scope["headers"] = [(n, v) for n, v in headers if n.lower() != _HEADER_KEY]
            # Two assertions: ambiguous, so neither is believed.
            vouched = (
                verify_client_assertion(self._secret(), values[0].decode("latin-1"))
                if len(values) == 1
                else None
            )
            if vouched is not None:
                address, proto = vouched
                scope["client"] = (address, 0)
                if scope["type"] == "http":
                    scope["scheme"] = proto
        await self.app(scope, receive, send)
