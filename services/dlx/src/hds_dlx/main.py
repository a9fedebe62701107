"""Application factory of the dicom link exchange service, and the lifespan that builds
its :class:`~hds_dlx.runtime.Runtime`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from prometheus_client import Gauge

from hds_common.app import create_backend_app, logged_app
from hds_common.http import internal_client
from hds_common.observability import ReadinessCheck
from hds_common.tokens import JwksClient, KeySource, StorageSessions, TokenVerifier
from hds_dlx.clients.auth import AuthClient
from hds_dlx.clients.bulk import AiohttpBulkClient, BulkClient, HttpxBulkClient
from hds_dlx.clients.codes import CodesClient
from hds_dlx.clients.storage import StorageClient
from hds_dlx.config import Settings
from hds_dlx.downloads.router import router as downloads_router
from hds_dlx.downloads.streaming import DownloadSlots
from hds_dlx.errors import install_handlers
from hds_dlx.openapi import install_openapi
from hds_dlx.runtime import Runtime
from hds_dlx.tokens.router import answers_router
from hds_dlx.tokens.router import router as tokens_router

__all__ = ["app_from_env", "create_app"]

SERVICE = "dlx"


@asynccontextmanager
async def build_runtime(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None,
    key_source: KeySource | None,
    downloads_in_flight: Gauge,
) -> AsyncIterator[Runtime]:
    """The neighbours' clients, the token verifier and the download slots, closed when
    the app stops."""
    secret = settings.suite.internal_secret.get_secret_value()
    async with AsyncExitStack() as stack:

        def client(base_url: str) -> httpx.AsyncClient:
            created = internal_client(
                base_url,
                service=SERVICE,
                secret=secret,
                timeout=settings.upstream_timeout_seconds,
                transport=transport,
            )
            stack.push_async_callback(created.aclose)
            return created

        codes = client(settings.suite.codes_url)
        auth = client(settings.suite.auth_url)
        storage = client(settings.suite.storage_url)
        bulk: BulkClient
        if settings.stream_client == "aiohttp" and transport is None:
            bulk = AiohttpBulkClient(
                settings.suite.storage_url,
                secret=secret,
                connect_timeout=10.0,
                read_timeout=settings.upstream_timeout_seconds,
                buffer_bytes=settings.stream_buffer_bytes,
            )
            stack.push_async_callback(bulk.aclose)
        else:
            # An injected transport replaces the network, which only httpx can use.
            bulk = HttpxBulkClient(storage)
        keys = key_source or JwksClient(
            f"{settings.suite.auth_url.rstrip('/')}/.well-known/jwks.json", auth
        )
        yield Runtime(
            settings=settings,
            codes=CodesClient(codes),
            auth=AuthClient(auth),
            storage=StorageClient(
                storage, bulk, default_retry_after=settings.busy_retry_after_seconds
            ),
            # A DLX client sends one token for its list and every download: remember it.
            # Whether the code's session is still live is asked of storage at most once per
            # HDS_SESSION_CHECK_SECONDS, not per download.
            verifier=TokenVerifier(
                issuer=settings.suite.jwt_issuer,
                keys=keys,
                cache_size=1024,
                liveness=StorageSessions(storage),
                liveness_ttl=settings.suite.session_check_seconds,
            ),
            slots=DownloadSlots(
                settings.max_concurrent_downloads, on_change=downloads_in_flight.set
            ),
            upstream_clients={"codes": codes, "auth": auth, "storage": storage},
        )


def readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    """DLX holds no data; it is ready when the services it needs answer."""
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    clients = runtime.upstream_clients if runtime is not None else {}

    def check(client: httpx.AsyncClient) -> ReadinessCheck:
        async def ping() -> None:
            response = await client.get("/healthz", timeout=2.0)
            response.raise_for_status()

        return ping

    return {name: check(client) for name, client in clients.items()}


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    key_source: KeySource | None = None,
) -> FastAPI:
    """Build the app. ``transport`` replaces the network for calls to other services
    (tests wire the services together in one process with it; the bulk path then uses
    httpx, as aiohttp cannot use it). ``key_source`` replaces the identity service's JWKS
    for verifying DLX tokens."""
    settings = settings or Settings()
    # Bound when the app exists (its metrics registry); the lifespan runs after that.
    downloads_in_flight: Gauge

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with build_runtime(
            settings,
            transport=transport,
            key_source=key_source,
            downloads_in_flight=downloads_in_flight,
        ) as runtime:
            app.state.runtime = runtime
            yield

    app = create_backend_app(
        settings,
        transport=transport,
        service=SERVICE,
        title="HDS dicom link exchange service",
        description=(
            "The DICOM Link Exchange API (DIN/TS 19455) under /dlx/v1: a code and the "
            "patient's birth date give a short-lived JWT that lists and downloads the "
            "package's studies (IHE PDI ZIP) and reports (PDF)."
        ),
        lifespan=lifespan,
        readiness=readiness,
        routers=(tokens_router, answers_router, downloads_router),
    )
    install_handlers(app)
    install_openapi(app)
    downloads_in_flight = Gauge(
        "hds_dlx_downloads_in_flight",
        "Downloads being streamed (each holds a download slot)",
        registry=app.state.metrics_registry,
    )
    return app


def app_from_env() -> FastAPI:
    """Entry point for uvicorn (``--factory``)."""
    return logged_app(SERVICE, Settings, create_app)
