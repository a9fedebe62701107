"""The routing table: which upstream serves a path, whether the path is public, which token
audience it takes, its rate-limit class and its body size limit (docs/architecture.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from hds_common.tokens import ACCOUNT_AUDIENCE, DLX_AUDIENCE
from hds_gateway.errors import RouteNotFound

__all__ = [
    "GATEWAY_PUBLIC_PATHS",
    "PUBLIC_ROUTES",
    "UPSTREAMS",
    "ProxyRoute",
    "RateClass",
    "resolve",
    "upstream_for",
]

UPSTREAMS = ("auth", "codes", "storage", "dlx")

# Path prefix → upstream. ``/internal/`` is deliberately absent: it is never routed.
_PREFIXES = (
    ("/auth/", "auth"),
    ("/.well-known/", "auth"),
    ("/codes/", "codes"),
    ("/storage/", "storage"),
    ("/dlx/", "dlx"),
)


class RateClass(StrEnum):
    # Credential and access-code endpoints: a strict limit per client address.
    AUTH = "auth"
    # Everything else: limits per client address and per token subject.
    API = "api"


@dataclass(frozen=True, slots=True)
class _Rule:
    methods: frozenset[str]
    pattern: re.Pattern[str]

    def matches(self, method: str, path: str) -> bool:
        return method in self.methods and self.pattern.fullmatch(path) is not None


def _rule(methods: str, pattern: str) -> _Rule:
    return _Rule(frozenset(methods.split()), re.compile(pattern))


_SEGMENT = r"[^/]+"

# Where guessing pays (passwords, activation and reset secrets, access codes): the strict
# rate-limit class. All of them are public. Refresh and logout carry long random tokens and
# are called routinely.
_CREDENTIAL_ROUTES = (
    _rule("POST", r"/auth/v1/register"),
    # GET: the link in the activation mail; POST: the SPA.
    _rule("GET POST", r"/auth/v1/activate"),
    _rule("POST", r"/auth/v1/activation/resend"),
    # GET: the link in the invitation mail; POST: accepting it with a password.
    _rule("GET", r"/auth/v1/invitation"),
    _rule("POST", r"/auth/v1/invitation/accept"),
    _rule("POST", r"/auth/v1/login"),
    _rule("POST", r"/auth/v1/password/reset"),
    _rule("GET HEAD", rf"/dlx/v1/token/{_SEGMENT}"),
    _rule("POST", rf"/dlx/v1/tokentfa/{_SEGMENT}"),
)

# Proxied routes reachable without a token; every other proxied route needs a valid one.
PUBLIC_ROUTES = (
    *_CREDENTIAL_ROUTES,
    _rule("POST", r"/auth/v1/refresh"),
    _rule("POST", r"/auth/v1/logout"),
    _rule("GET HEAD", r"/\.well-known/jwks\.json"),
    _rule("GET HEAD", r"/auth/v1/jwks\.json"),
    _rule("GET HEAD", r"/dlx/v1/api_info"),
)

# The gateway's own public routes (served here, never proxied).
GATEWAY_PUBLIC_PATHS = (
    "/c/{code}",
    "/?code={code}",
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/docs/assets/{name}",
)

# Uploads of DICOM files and PDFs: the large body limit.
_INGEST_ROUTES = (
    _rule("POST", rf"/storage/v1/packages/{_SEGMENT}/instances"),
    _rule("POST", rf"/storage/v1/packages/{_SEGMENT}/documents"),
)

_DOT_SEGMENT = re.compile(r"(^|/)\.{1,2}(/|$)")


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    upstream: str
    public: bool
    # The audience a token must carry here (DLX tokens only on DLX routes and vice versa).
    audience: str
    rate_class: RateClass
    ingest: bool


def upstream_for(path: str) -> str | None:
    """The upstream serving ``path``, or None (unknown prefix, ``/internal/``)."""
    for prefix, upstream in _PREFIXES:
        if path.startswith(prefix):
            return upstream
    return None


def resolve(method: str, path: str) -> ProxyRoute:
    """The route of a proxied request, or :class:`RouteNotFound`.

    ``path`` is the decoded path. Dot segments are refused: an upstream client that
    normalised ``/auth/../internal/...`` would otherwise reach an internal route.
    """
    upstream = upstream_for(path)
    if upstream is None or _DOT_SEGMENT.search(path):
        raise RouteNotFound("no such route")
    public = any(rule.matches(method, path) for rule in PUBLIC_ROUTES)
    credential = any(rule.matches(method, path) for rule in _CREDENTIAL_ROUTES)
    return ProxyRoute(
        upstream=upstream,
        public=public,
        audience=DLX_AUDIENCE if upstream == "dlx" else ACCOUNT_AUDIENCE,
        rate_class=RateClass.AUTH if credential else RateClass.API,
        ingest=any(rule.matches(method, path) for rule in _INGEST_ROUTES),
    )
