"""Headers between client, gateway and upstream: hop-by-hop removal, ``X-Forwarded-*``,
and the client address the rate limits key on."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from multidict import CIMultiDict

from hds_common.forwarded_client import CLIENT_HEADER

__all__ = [
    "ClientOrigin",
    "TrustedProxies",
    "client_origin",
    "upstream_request_headers",
    "upstream_response_headers",
]

RawHeaders = Sequence[tuple[bytes, bytes]]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Set by the gateway itself (or the HTTP client), never copied from the client. Client-sent
# ``X-HDS-*`` headers (service token, grant) are dropped as well: they are for internal
# calls only, and the gateway never routes /internal.
_REQUEST_DROP = HOP_BY_HOP | {
    b"host",
    b"expect",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-real-ip",
    b"x-request-id",
}
_INTERNAL_PREFIX = b"x-hds-"

# The gateway's server adds its own Date and Server, and its middleware the request id.
_RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}


def _hop_by_hop(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The standard hop-by-hop headers plus those named in ``Connection``."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == b"connection"
        for token in value.split(b",")
        if token.strip()
    }
    return HOP_BY_HOP | named


class TrustedProxies:
    """Addresses (or networks) of reverse proxies whose forwarding headers are believed."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)

    def __contains__(self, address: object) -> bool:
        if not self._networks or not isinstance(address, str):
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)


@dataclass(frozen=True, slots=True)
class ClientOrigin:
    """Who is asking, as far as the gateway can tell."""

    # The client address (rate limits key on it).
    address: str
    # The X-Forwarded-* values the upstream gets.
    forwarded_for: str
    proto: str
    host: str


def _header(headers: RawHeaders, name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return ", ".join(values) if values else None


def client_origin(
    *, peer: str, scheme: str, headers: RawHeaders, trusted: TrustedProxies
) -> ClientOrigin:
    """The client behind ``peer``: a trusted proxy's X-Forwarded-* are believed and the
    peer appended; anyone else's are replaced by what the gateway saw itself."""
    host = _header(headers, b"host") or ""
    if peer in trusted:
        forwarded = _header(headers, b"x-forwarded-for")
        if forwarded:
            chain = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
            # The rightmost address not belonging to a trusted proxy is the client.
            address = next((hop for hop in reversed(chain) if hop not in trusted), chain[0])
            return ClientOrigin(
                address=address,
                forwarded_for=f"{', '.join(chain)}, {peer}",
                proto=_header(headers, b"x-forwarded-proto") or scheme,
                host=_header(headers, b"x-forwarded-host") or host,
            )
    return ClientOrigin(address=peer, forwarded_for=peer, proto=scheme, host=host)


def upstream_request_headers(
    headers: RawHeaders,
    *,
    origin: ClientOrigin,
    request_id: str | None,
    client_assertion: str | None = None,
) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop ones, plus X-Forwarded-*, X-Request-ID and the
    gateway's signed client address (``X-HDS-Client``, the only client address the
    services believe). ``Authorization`` passes unchanged: each service verifies the
    token again."""
    drop = _hop_by_hop(headers) | _REQUEST_DROP
    result: CIMultiDict[str] = CIMultiDict()
    for name, value in headers:
        lower = name.lower()
        if lower in drop or lower.startswith(_INTERNAL_PREFIX):
            continue
        result.add(name.decode("latin-1"), value.decode("latin-1"))
    result["X-Forwarded-For"] = origin.forwarded_for
    result["X-Forwarded-Proto"] = origin.proto
    if origin.host:
        result["X-Forwarded-Host"] = origin.host
    if request_id:
        result["X-Request-ID"] = request_id
    if client_assertion:
        result[CLIENT_HEADER] = client_assertion
    return result


def upstream_response_headers(headers: RawHeaders) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers minus hop-by-hop ones; everything else (Range,
    Content-Range, ETag, Content-Length, Content-Disposition …) passes untouched."""
    drop = _hop_by_hop(headers) | _RESPONSE_DROP
    return [(name.lower(), value) for name, value in headers if name.lower() not in drop]
