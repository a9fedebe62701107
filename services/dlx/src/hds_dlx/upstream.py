"""Calls to the neighbouring services (docs/architecture.md), with their answers mapped to
the DLX answers. The DLX service holds no data: codes validates, auth mints the JWT, storage
lists and streams.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import structlog
from pydantic import TypeAdapter, ValidationError

from hds_common.errors import BadGateway, BadRequest, Forbidden, Unauthorized
from hds_dlx.errors import ComeBackLater, PackageEmpty, RangeNotSatisfiable
from hds_dlx.schemas import CodeValidation, MintedToken, PackageStatus, StorageItem
from hds_dlx.streaming import BulkClient, UpstreamBody

__all__ = [
    "GRANT_HEADER",
    "AuthClient",
    "CodesClient",
    "DlxSession",
    "StorageClient",
    "session_expired",
    "tfa_failed",
    "unknown_data_item",
]

GRANT_HEADER = "X-HDS-Grant"
_PROBLEM_PREFIX = "urn:hds:problem:"

log = structlog.get_logger("hds.dlx.upstream")

_items_adapter = TypeAdapter(list[StorageItem])


@dataclass(frozen=True, slots=True)
class DlxSession:
    """What a verified DLX token stands for."""

    code_id: str
    package_id: str
    grant: str


def tfa_failed(detail: str = "Authentication failed.") -> Unauthorized:
    # One answer for unknown codes, wrong answers and locked codes alike.
    return Unauthorized(detail, slug="tfa-failed")


def session_expired() -> Unauthorized:
    return Unauthorized(
        "The access is no longer valid; use /token and /tokentfa again.",
        slug="dlx-session-invalid",
    )


def _bad_gateway(service: str, what: str) -> BadGateway:
    return BadGateway(f"The {service} service could not {what}.", slug=f"{service}-unavailable")


class CodesClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def validate(self, *, code: str, birth_date: dt.date, client: str) -> CodeValidation:
        """The code's package and grant, or 401 (wrong, unknown, locked) / 403 (expired)."""
        try:
            response = await self._client.post(
                "/internal/v1/validate",
                json={"code": code, "birth_date": birth_date.isoformat(), "client": client},
            )
        except httpx.HTTPError as exc:
            log.warning("codes_unreachable", error=f"{type(exc).__name__}: {exc}")
            raise _bad_gateway("codes", "check the access code") from None
        if response.status_code == 200:
            try:
                return CodeValidation.model_validate_json(response.content)
            except ValidationError:
                raise _bad_gateway("codes", "check the access code") from None
        if response.status_code == 403:
            raise Forbidden(
                "The access code has expired; ask the institution to reactivate it.",
                slug="code-expired",
            )
        if 400 <= response.status_code < 500:
            # "All other errors should result in error code 401" (DIN/TS 19455).
            raise tfa_failed()
        log.warning("codes_failed", status=response.status_code)
        raise _bad_gateway("codes", "check the access code")


class AuthClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def mint_dlx_token(self, validation: CodeValidation, *, ttl_seconds: int) -> str:
        try:
            response = await self._client.post(
                "/internal/v1/dlx-tokens",
                json={
                    "package_id": validation.package_id,
                    "code_id": validation.code_id,
                    "grant": validation.grant,
                    "key_session_id": validation.key_session_id,
                    "ttl_seconds": ttl_seconds,
                },
            )
        except httpx.HTTPError as exc:
            log.warning("auth_unreachable", error=f"{type(exc).__name__}: {exc}")
            raise _bad_gateway("auth", "issue the token") from None
        if response.status_code in (200, 201):
            try:
                return MintedToken.model_validate_json(response.content).token
            except ValidationError:
                pass
        log.warning("auth_mint_failed", status=response.status_code)
        raise _bad_gateway("auth", "issue the token")


class StorageClient:
    """Package status and items (httpx), archives and documents (the bulk client)."""

    def __init__(
        self, client: httpx.AsyncClient, bulk: BulkClient, *, default_retry_after: int
    ) -> None:
        self._client = client
        self._bulk = bulk
        self._default_retry_after = default_retry_after

    @staticmethod
    def _package_path(session: DlxSession, suffix: str) -> str:
        return f"/internal/v1/packages/{quote(session.package_id, safe='')}/{suffix}"

    async def _get(self, path: str, *, grant: str | None = None) -> httpx.Response:
        headers = {GRANT_HEADER: grant} if grant else {}
        try:
            return await self._client.get(path, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("storage_unreachable", error=f"{type(exc).__name__}: {exc}")
            raise _bad_gateway("storage", "be reached") from None

    async def status(self, session: DlxSession) -> PackageStatus:
        response = await self._get(self._package_path(session, "status"))
        if response.status_code == 200:
            try:
                return PackageStatus.model_validate_json(response.content)
            except ValidationError:
                raise _bad_gateway("storage", "report the package status") from None
        if response.status_code == 404:
            raise session_expired()  # the package was deleted after the token was issued
        log.warning("storage_status_failed", status=response.status_code)
        raise _bad_gateway("storage", "report the package status")

    async def require_complete(self, session: DlxSession) -> None:
        """503 ``comebackLater`` while the package is still being ingested."""
        status = await self.status(session)
        if status.state != "complete":
            raise ComeBackLater(self._retry_after(status), reason="package incomplete")

    def _retry_after(self, status: PackageStatus | None) -> int:
        if status is not None and status.retry_after is not None and status.retry_after > 0:
            return status.retry_after
        return self._default_retry_after

    async def _incomplete(self, session: DlxSession, retry_after: str | None) -> ComeBackLater:
        """storage's 409 ``package-incomplete``, as 503 after its ``Retry-After`` (asking
        for the package status when the answer had none)."""
        if retry_after is not None and retry_after.strip().isdigit():
            seconds = int(retry_after)
            if seconds > 0:
                return ComeBackLater(seconds, reason="package incomplete")
        try:
            status: PackageStatus | None = await self.status(session)
        except BadGateway:
            status = None
        return ComeBackLater(self._retry_after(status), reason="package incomplete")

    async def items(self, session: DlxSession) -> list[StorageItem]:
        response = await self._get(self._package_path(session, "items"), grant=session.grant)
        if response.status_code == 200:
            try:
                return _items_adapter.validate_json(response.content)
            except ValidationError:
                raise _bad_gateway("storage", "list the package") from None
        if response.status_code == 409:
            raise await self._incomplete(session, response.headers.get("Retry-After"))
        if response.status_code in (401, 403, 404):
            log.info("storage_refused_items", status=response.status_code)
            raise session_expired()
        log.warning("storage_items_failed", status=response.status_code)
        raise _bad_gateway("storage", "list the package")

    async def open_archive(
        self, session: DlxSession, *, item_id: str | None, conditions: Mapping[str, str]
    ) -> UpstreamBody:
        """The IHE PDI ZIP of one study (or of the whole package), at the requested range."""
        params = [("item", item_id)] if item_id is not None else []
        return await self._open(
            session, self._package_path(session, "archive"), params=params, conditions=conditions
        )

    async def open_document(
        self, session: DlxSession, *, item_id: str, conditions: Mapping[str, str]
    ) -> UpstreamBody:
        path = self._package_path(session, f"documents/{quote(item_id, safe='')}")
        return await self._open(session, path, params=[], conditions=conditions)

    async def _open(
        self,
        session: DlxSession,
        path: str,
        *,
        params: list[tuple[str, str]],
        conditions: Mapping[str, str],
    ) -> UpstreamBody:
        try:
            upstream = await self._bulk.open(
                path, params=params, headers={GRANT_HEADER: session.grant, **conditions}
            )
        except Exception as exc:  # httpx.HTTPError, aiohttp.ClientError, OSError, timeouts
            log.warning("storage_unreachable", error=f"{type(exc).__name__}: {exc}")
            raise _bad_gateway("storage", "be reached") from None
        if upstream.status_code in (200, 206):
            return upstream
        body = b""
        try:
            body = await upstream.read()  # small problem body; lets the connection be reused
        except Exception:  # the error answer itself is what matters
            pass
        finally:
            await upstream.aclose()
        raise await self._download_error(session, upstream, _problem_slug(body))

    async def _download_error(
        self, session: DlxSession, upstream: UpstreamBody, slug: str | None
    ) -> Exception:
        status = upstream.status_code
        if status == 416:
            headers = {}
            content_range = upstream.header("Content-Range")
            if content_range:
                headers["Content-Range"] = content_range
            return RangeNotSatisfiable(
                "The requested range lies beyond the end of the download.", headers=headers
            )
        if status == 409:
            return await self._incomplete(session, upstream.header("Retry-After"))
        if status == 404 and slug == "package-empty":
            return PackageEmpty()
        if status in (400, 404):
            return unknown_data_item()
        if status in (401, 403):
            log.info("storage_refused_download", status=status)
            return session_expired()
        log.warning("storage_download_failed", status=status)
        return _bad_gateway("storage", "deliver the download")


def _problem_slug(body: bytes) -> str | None:
    """The slug of storage's problem answer (``urn:hds:problem:<slug>``), if it is one."""
    try:
        problem = json.loads(body)
    except ValueError:
        return None
    kind = problem.get("type") if isinstance(problem, dict) else None
    if not isinstance(kind, str) or not kind.startswith(_PROBLEM_PREFIX):
        return None
    return kind[len(_PROBLEM_PREFIX) :]


def unknown_data_item() -> BadRequest:
    # The same answer whether the id does not exist or belongs to another code.
    return BadRequest("Study or report for the given ID is unknown.", slug="unknown-data-item")
