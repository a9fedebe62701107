"""Request dependencies every service shares: its runtime, a verified bearer token, and
the calling service of an ``/internal`` route.

Each service's lifespan puts its ``Runtime`` on ``app.state.runtime``; what these
dependencies need of it is the :class:`ServiceRuntime` protocol (its settings, and the
token verifier of a service that takes bearer tokens).
"""

# No ``from __future__ import annotations`` here: FastAPI reads a dependency's parameters
# from its annotations, and resolves string annotations in the module's globals, where the
# ``scheme`` local to bearer_claims is not; evaluated at definition, the annotation holds
# the ``Security(scheme)`` object itself.
from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol, TypeVar, cast

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hds_common.errors import MissingToken
from hds_common.service_auth import SERVICE_TOKEN_HEADER, verify_service_token
from hds_common.settings import ServiceSettings
from hds_common.tokens import ACCOUNT_AUDIENCE, TokenClaims, TokenVerifier

__all__ = [
    "AccountClaimsDep",
    "CallingServiceDep",
    "ServiceRuntime",
    "account_claims",
    "account_token",
    "bearer_claims",
    "require_service",
    "runtime_dependency",
    "service_runtime",
]


class ServiceRuntime(Protocol):
    @property
    def settings(self) -> ServiceSettings: ...

    @property
    def verifier(self) -> TokenVerifier | None: ...


def service_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def bearer_claims(
    *,
    audience: str,
    scheme: HTTPBearer,
    missing: str = "bearer token required",
) -> Callable[..., Awaitable[TokenClaims]]:
    """A dependency answering the verified claims of the request's bearer token for
    ``audience``: :class:`MissingToken` without one, ``InvalidToken`` for a bad one.
    ``scheme`` (``auto_error=False``) names the security scheme in the OpenAPI document."""

    async def claims(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(scheme)],
    ) -> TokenClaims:
        if credentials is None or not credentials.credentials:
            raise MissingToken(missing)
        verifier = service_runtime(request).verifier
        if verifier is None:
            raise RuntimeError("this service's runtime has no token verifier")
        return await verifier.verify(credentials.credentials, audience=audience)

    return claims


def require_service(
    request: Request,
    token: Annotated[str | None, Header(alias=SERVICE_TOKEN_HEADER)] = None,
) -> str:
    """The calling service's name; ``/internal`` routes are for the suite's services only."""
    secret = service_runtime(request).settings.suite.internal_secret.get_secret_value()
    return verify_service_token(secret, token)


CallingServiceDep = Annotated[str, Depends(require_service)]


RuntimeT = TypeVar("RuntimeT")


def runtime_dependency(kind: type[RuntimeT]) -> Callable[[Request], RuntimeT]:
    """The dependency answering a service's own ``Runtime`` (``app.state.runtime``), typed
    as ``kind``: ``RuntimeDep = Annotated[Runtime, Depends(runtime_dependency(Runtime))]``."""

    del kind  # it types the answer; nothing is checked at run time

    def runtime(request: Request) -> RuntimeT:
        return cast(RuntimeT, request.app.state.runtime)

    return runtime


# The account token (JWT of the identity service, audience hds-account), as every service
# that takes one names it in its OpenAPI document and checks it.
account_token = HTTPBearer(
    auto_error=False, description="Account token (JWT) issued by the identity service"
)
account_claims = bearer_claims(audience=ACCOUNT_AUDIENCE, scheme=account_token)
AccountClaimsDep = Annotated[TokenClaims, Depends(account_claims)]
