"""One typed client of the suite's HTTP API through the gateway, async
(:class:`SuiteClient`) and sync (:class:`SyncSuiteClient`): log in, publish a package
(create, upload, complete), issue an access code, validate it for a DLX token, list and
download through DLX. Error answers raise :class:`~hds_client.errors.ApiError`.

After :meth:`login` the client sends the account token with every call that needs one.
"""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import IO, Any, Self, TypeVar

import httpx

from hds_client import calls
from hds_client.calls import Body, Call, DlxItem, Download, IssuedCode, PackageInfo, TokenPair
from hds_client.errors import ApiError, ClientError, Unreachable

__all__ = [
    "DEFAULT_GATEWAY",
    "DEFAULT_TIMEOUT",
    "ApiError",
    "ClientError",
    "DlxItem",
    "Download",
    "IssuedCode",
    "PackageInfo",
    "SuiteClient",
    "SyncSuiteClient",
    "TokenPair",
    "Unreachable",
]

T = TypeVar("T")

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
# Uploads of large instances and archives take a while; connecting does not.
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


class _Session:
    """The account token of the last login (or the one the client was given)."""

    def __init__(self, token: str | None) -> None:
        self.tokens = TokenPair(token, None, None) if token else None

    @property
    def token(self) -> str:
        if self.tokens is None:
            raise ClientError("log in first")
        return self.tokens.access_token


def _unreachable(base_url: httpx.URL, call: Call[Any], exc: httpx.HTTPError) -> Unreachable:
    return Unreachable(f"{call.action}: cannot reach {base_url}: {exc}")


class SuiteClient:
    """Async client (httpx.AsyncClient). ``http`` reuses a client the caller owns;
    otherwise one is made for ``base_url`` (``transport`` replaces the network).
    ``token``: an account token got elsewhere, instead of a :meth:`login`."""

    def __init__(
        self,
        base_url: str = DEFAULT_GATEWAY,
        *,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        token: str | None = None,
    ) -> None:
        self._owned = http is None
        self.http = http or httpx.AsyncClient(
            base_url=base_url, transport=transport, timeout=timeout
        )
        self._session = _Session(token)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self.http.aclose()

    async def send(self, call: Call[T]) -> T:
        try:
            response = await self.http.request(call.method, call.path, **call.options)
        except httpx.HTTPError as exc:
            raise _unreachable(self.http.base_url, call, exc) from None
        return call.answer(response)

    @property
    def token(self) -> str:
        """The account token of the last login."""
        return self._session.token

    async def login(self, email: str, password: str) -> TokenPair:
        self._session.tokens = await self.send(calls.login(email, password))
        return self._session.tokens

    async def create_package(self) -> PackageInfo:
        return await self.send(calls.create_package(self.token))

    async def package(self, package_id: str) -> PackageInfo:
        return await self.send(calls.package(self.token, package_id))

    async def upload_instance(
        self, package_id: str, body: Body, *, length: int | None, name: str = "instance"
    ) -> dict[str, Any]:
        call = calls.upload_instance(self.token, package_id, body, length=length, name=name)
        return await self.send(call)

    async def upload_instances(
        self, package_id: str, files: list[tuple[str, bytes]]
    ) -> dict[str, Any]:
        return await self.send(calls.upload_instances(self.token, package_id, files))

    async def upload_document(
        self, package_id: str, name: str, file: IO[bytes] | bytes, patient: dict[str, str]
    ) -> dict[str, Any]:
        call = calls.upload_document(self.token, package_id, name, file, patient)
        return await self.send(call)

    async def complete_package(self, package_id: str) -> dict[str, Any]:
        return await self.send(calls.complete_package(self.token, package_id))

    async def issue_code(
        self, package_id: str, birth_date: dt.date, *, validity_days: int | None = None
    ) -> IssuedCode:
        call = calls.issue_code(self.token, package_id, birth_date, validity_days=validity_days)
        return await self.send(call)

    async def dlx_token(self, code: str, birth_date: str) -> str:
        return await self.send(calls.dlx_token(code, birth_date))

    async def dlx_list(self, dlx_token: str) -> list[DlxItem]:
        return await self.send(calls.dlx_list(dlx_token))

    async def dlx_download(
        self, dlx_token: str, item_id: str, *, headers: dict[str, str] | None = None
    ) -> Download:
        return await self.send(calls.dlx_download(dlx_token, item_id, headers=headers))

    async def dlx_download_all(
        self, dlx_token: str, *, headers: dict[str, str] | None = None
    ) -> Download:
        return await self.send(calls.dlx_download_all(dlx_token, headers=headers))


class SyncSuiteClient:
    """The same API, blocking (httpx.Client): for scripts and synchronous tests."""

    def __init__(
        self,
        base_url: str = DEFAULT_GATEWAY,
        *,
        http: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        token: str | None = None,
    ) -> None:
        self._owned = http is None
        self.http = http or httpx.Client(base_url=base_url, transport=transport, timeout=timeout)
        self._session = _Session(token)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def send(self, call: Call[T]) -> T:
        try:
            response = self.http.request(call.method, call.path, **call.options)
        except httpx.HTTPError as exc:
            raise _unreachable(self.http.base_url, call, exc) from None
        return call.answer(response)

    @property
    def token(self) -> str:
        """The account token of the last login."""
        return self._session.token

    def login(self, email: str, password: str) -> TokenPair:
        self._session.tokens = self.send(calls.login(email, password))
        return self._session.tokens

    def create_package(self) -> PackageInfo:
        return self.send(calls.create_package(self.token))

    def package(self, package_id: str) -> PackageInfo:
        return self.send(calls.package(self.token, package_id))

    def upload_instance(
        self, package_id: str, body: bytes, *, name: str = "instance"
    ) -> dict[str, Any]:
        call = calls.upload_instance(self.token, package_id, body, length=len(body), name=name)
        return self.send(call)

    def upload_instances(self, package_id: str, files: list[tuple[str, bytes]]) -> dict[str, Any]:
        return self.send(calls.upload_instances(self.token, package_id, files))

    def upload_document(
        self, package_id: str, name: str, file: IO[bytes] | bytes, patient: dict[str, str]
    ) -> dict[str, Any]:
        return self.send(calls.upload_document(self.token, package_id, name, file, patient))

    def complete_package(self, package_id: str) -> dict[str, Any]:
        return self.send(calls.complete_package(self.token, package_id))

    def issue_code(
        self, package_id: str, birth_date: dt.date, *, validity_days: int | None = None
    ) -> IssuedCode:
        call = calls.issue_code(self.token, package_id, birth_date, validity_days=validity_days)
        return self.send(call)

    def dlx_token(self, code: str, birth_date: str) -> str:
        return self.send(calls.dlx_token(code, birth_date))

    def dlx_list(self, dlx_token: str) -> list[DlxItem]:
        return self.send(calls.dlx_list(dlx_token))

    def dlx_download(
        self, dlx_token: str, item_id: str, *, headers: dict[str, str] | None = None
    ) -> Download:
        return self.send(calls.dlx_download(dlx_token, item_id, headers=headers))

    def dlx_download_all(
        self, dlx_token: str, *, headers: dict[str, str] | None = None
    ) -> Download:
        return self.send(calls.dlx_download_all(dlx_token, headers=headers))
