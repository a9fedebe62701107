"""The routing table: upstream, public or not, audience, rate-limit class, body limit."""

from __future__ import annotations

import pytest

from hds_common.errors import NotFound
from hds_gateway.routing.table import RateClass, resolve


@pytest.mark.parametrize(
    ("method", "path", "upstream", "public", "audience", "rate_class", "ingest"),
    [
        ("POST", "/auth/v1/login", "auth", True, "hds-account", RateClass.AUTH, False),
        ("POST", "/auth/v1/register", "auth", True, "hds-account", RateClass.AUTH, False),
        ("POST", "/auth/v1/password/reset", "auth", True, "hds-account", RateClass.AUTH, False),
        ("POST", "/auth/v1/refresh", "auth", True, "hds-account", RateClass.API, False),
        ("POST", "/auth/v1/logout", "auth", True, "hds-account", RateClass.API, False),
        ("GET", "/auth/v1/me", "auth", False, "hds-account", RateClass.API, False),
        ("GET", "/.well-known/jwks.json", "auth", True, "hds-account", RateClass.API, False),
        ("POST", "/codes/v1/import", "codes", False, "hds-account", RateClass.API, False),
        ("POST", "/storage/v1/packages", "storage", False, "hds-account", RateClass.API, False),
        (
            "POST",
            "/storage/v1/packages/p-1/instances",
            "storage",
            False,
            "hds-account",
            RateClass.API,
            True,
        ),
        (
            "POST",
            "/storage/v1/packages/p-1/documents",
            "storage",
            False,
            "hds-account",
            RateClass.API,
            True,
        ),
        ("GET", "/dlx/v1/api_info", "dlx", True, "hds-dlx", RateClass.API, False),
        ("GET", "/dlx/v1/token/ABCD", "dlx", True, "hds-dlx", RateClass.AUTH, False),
        ("POST", "/dlx/v1/tokentfa/ABCD", "dlx", True, "hds-dlx", RateClass.AUTH, False),
        ("GET", "/dlx/v1/list", "dlx", False, "hds-dlx", RateClass.API, False),
        ("GET", "/dlx/v1/download/item-1", "dlx", False, "hds-dlx", RateClass.API, False),
        ("GET", "/dlx/v1/downloadall", "dlx", False, "hds-dlx", RateClass.API, False),
    ],
)
def test_route_table(
    method: str,
    path: str,
    upstream: str,
    public: bool,
    audience: str,
    rate_class: RateClass,
    ingest: bool,
) -> None:
    route = resolve(method, path)
    assert (route.upstream, route.public, route.audience, route.rate_class, route.ingest) == (
        upstream,
        public,
        audience,
        rate_class,
        ingest,
    )


@pytest.mark.parametrize(
    "path",
    [
        "/internal/v1/validate",
        "/internal",
        "/",
        "/metrics/x",
        "/authx/v1/login",
        "/auth/v1/../../internal/v1/x",
        "/storage/v1/./objects",
        "/dlx/v1/token/..",
    ],
)
def test_unrouted_paths(path: str) -> None:
    with pytest.raises(NotFound):
        resolve("GET", path)
