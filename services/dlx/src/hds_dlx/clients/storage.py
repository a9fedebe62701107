"""storage: the package's items, one item's content, the whole package's archive.

``download/{id}`` is one call (``items/{item_id}/content``): storage answers the item's
kind in ``X-HDS-Item-Kind`` with its body, so DLX need not list the package (storage
decrypts the whole package's metadata for a list) to learn whether the id is a study or a
document. ``downloadall`` is one call as well: the archive route checks completeness
itself, and its 409 becomes ``comebackLater``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

import httpx
import structlog
from pydantic import TypeAdapter

from hds_common.errors import BadGateway
from hds_dlx.clients.bulk import BulkClient, UpstreamBody
from hds_dlx.clients.neighbour import NeighbourClient
from hds_dlx.clients.schemas import PackageStatus, StorageItem
from hds_dlx.errors import (
    ComeBackLater,
    DlxSessionInvalid,
    PackageEmpty,
    RangeNotSatisfiable,
    StorageUnavailable,
    UnknownDataItem,
)

__all__ = [
    "GRANT_HEADER",
    "ITEM_KIND_HEADER",
    "DlxSession",
    "ItemKind",
    "OpenedItem",
    "StorageClient",
]

GRANT_HEADER = "X-HDS-Grant"
ITEM_KIND_HEADER = "X-HDS-Item-Kind"
_PROBLEM_PREFIX = "urn:hds:problem:"

ItemKind = Literal["study", "document"]
_ITEM_KINDS: dict[str, ItemKind] = {"study": "study", "document": "document"}

log = structlog.get_logger("hds.dlx.upstream")

_items_adapter = TypeAdapter(list[StorageItem])


@dataclass(frozen=True, slots=True)
class DlxSession:
    """What a verified DLX token stands for."""

    code_id: str
    package_id: str
    grant: str


@dataclass(frozen=True, slots=True)
class OpenedItem:
    """One item's body as storage started sending it, and what kind of item it is."""

    body: UpstreamBody
    kind: ItemKind


class StorageClient(NeighbourClient):
    """Package status and items (httpx), item contents and archives (the bulk client)."""

    unavailable = StorageUnavailable

    def __init__(
        self, client: httpx.AsyncClient, bulk: BulkClient, *, default_retry_after: int
    ) -> None:
        super().__init__(client)
        self._bulk = bulk
        self._default_retry_after = default_retry_after

    @staticmethod
    def _package_path(session: DlxSession, suffix: str) -> str:
        return f"/internal/v1/packages/{quote(session.package_id, safe='')}/{suffix}"

    async def _get(self, path: str, *, grant: str | None = None) -> httpx.Response:
        headers = {GRANT_HEADER: grant} if grant else {}
        return await self._send("GET", path, what="be reached", headers=headers)

    async def status(self, session: DlxSession) -> PackageStatus:
        response = await self._get(self._package_path(session, "status"))
        if response.status_code == 200:
            return self._parsed(
                PackageStatus.model_validate_json, response, "report the package status"
            )
        if response.status_code == 404:
            raise DlxSessionInvalid()  # the package was deleted after the token was issued
        log.warning("storage_status_failed", status=response.status_code)
        raise StorageUnavailable("report the package status")

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
            return self._parsed(_items_adapter.validate_json, response, "list the package")
        if response.status_code == 409:
            raise await self._incomplete(session, response.headers.get("Retry-After"))
        if response.status_code in (401, 403, 404):
            log.info("storage_refused_items", status=response.status_code)
            raise DlxSessionInvalid()
        log.warning("storage_items_failed", status=response.status_code)
        raise StorageUnavailable("list the package")

    async def open_item(
        self, session: DlxSession, *, item_id: str, conditions: Mapping[str, str]
    ) -> OpenedItem:
        """One study (its IHE PDI ZIP) or document, at the requested range, with its kind."""
        path = self._package_path(session, f"items/{quote(item_id, safe='')}/content")
        body = await self._open(session, path, conditions=conditions)
        kind = _ITEM_KINDS.get((body.header(ITEM_KIND_HEADER) or "").strip().lower())
        if kind is None:
            await body.aclose()
            log.warning("storage_item_kind_missing", kind=body.header(ITEM_KIND_HEADER))
            raise StorageUnavailable("deliver the download")
        return OpenedItem(body=body, kind=kind)

    async def open_archive(
        self, session: DlxSession, *, conditions: Mapping[str, str]
    ) -> UpstreamBody:
        """The whole package as one IHE PDI ZIP, at the requested range."""
        path = self._package_path(session, "archive")
        return await self._open(session, path, conditions=conditions)

    async def _open(
        self,
        session: DlxSession,
        path: str,
        *,
        conditions: Mapping[str, str],
    ) -> UpstreamBody:
        try:
            upstream = await self._bulk.open(
                path, params=(), headers={GRANT_HEADER: session.grant, **conditions}
            )
        except Exception as exc:  # httpx.HTTPError, aiohttp.ClientError, OSError, timeouts
            log.warning("storage_unreachable", error=f"{type(exc).__name__}: {exc}")
            raise StorageUnavailable("be reached") from None
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
        if status == 404 and slug == "package-not-found":
            # Deleted after the token was issued (the list and the status answer the same).
            return DlxSessionInvalid()
        if status in (400, 404):
            # item-not-found, or an id storage cannot even route.
            return UnknownDataItem()
        if status in (401, 403):
            log.info("storage_refused_download", status=status)
            return DlxSessionInvalid()
        log.warning("storage_download_failed", status=status)
        return StorageUnavailable("deliver the download")


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
