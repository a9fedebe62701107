"""What DLX downloads of a complete package through a package grant: its items as DLX
``dataItems``, IHE PDI archives of its studies, its documents, and one item's content
(archive or document, whichever the item is).

Every route first requires the package to be complete (409 ``package-incomplete`` with
``Retry-After`` meanwhile), then opens the grant, then looks at the items.
"""

from __future__ import annotations

from typing import Literal

from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import Headers

from hds_storage.downloads.index import IndexReader
from hds_storage.downloads.repository import IndexRepository
from hds_storage.downloads.responses import archive_response, object_response
from hds_storage.downloads.schemas import DataItem
from hds_storage.errors import ItemNotFound, PackageEmpty
from hds_storage.keyring import GrantKeys, package_key_from_grant
from hds_storage.models import Document, Package, Study
from hds_storage.packages.service import PackageService
from hds_storage.runtime import Runtime

__all__ = ["ITEM_KIND_HEADER", "PackageDownloads"]

# Which kind of item ``item_content`` answered with (``study``: an IHE PDI ZIP,
# ``document``: the document itself), so the caller need not ask for the item list first.
ITEM_KIND_HEADER = "X-HDS-Item-Kind"

ItemContentKind = Literal["study", "document"]


class PackageDownloads:
    """Downloads of one package through its grant, in the request's session."""

    def __init__(self, runtime: Runtime, session: AsyncSession, grant: str | None) -> None:
        self.runtime = runtime
        self.grant = grant
        self.packages = PackageService(runtime, session)
        self.index = IndexRepository(session)

    async def _open(self, package_id: str) -> tuple[Package, bytes]:
        package = await self.packages.require_complete(package_id)
        return package, await package_key_from_grant(self.runtime, package, self.grant)

    async def items(self, package_id: str) -> list[DataItem]:
        package, package_key = await self._open(package_id)
        reader = IndexReader(self.index, GrantKeys(package.id, package_key))
        return await reader.data_items(
            await self.index.studies_of_package(package.id),
            await self.index.documents_of_package(package.id),
        )

    async def archive(
        self, package_id: str, item_ids: list[str], headers: Headers
    ) -> StreamingResponse:
        package, package_key = await self._open(package_id)
        studies: list[Study] = await self.index.studies_of_package(package.id)
        documents: list[Document] = await self.index.documents_of_package(package.id)
        if item_ids:
            wanted: set[str] = set(item_ids)
            known = {s.id for s in studies} | {d.id for d in documents}
            unknown = sorted(wanted - known)
            if unknown:
                raise ItemNotFound("no such item in this package", items=unknown)
            studies = [s for s in studies if s.id in wanted]
            documents = [d for d in documents if d.id in wanted]
        if not studies and not documents:
            raise PackageEmpty()
        name = item_ids[0] if len(item_ids) == 1 else package.id
        return await self._archive(package, package_key, studies, documents, name, headers)

    async def _archive(
        self,
        package: Package,
        package_key: bytes,
        studies: list[Study],
        documents: list[Document],
        name: str,
        headers: Headers,
    ) -> StreamingResponse:
        reader = IndexReader(self.index, GrantKeys(package.id, package_key))
        content = await reader.archive_content(studies, documents)
        return await archive_response(
            self.runtime.store,
            {package.id: package_key},
            content,
            self.runtime.plans,
            filename=f"{name}.zip",
            request_headers=headers,
        )

    async def document(
        self, package_id: str, document_id: str, headers: Headers
    ) -> StreamingResponse:
        package, package_key = await self._open(package_id)
        document = await self.index.document(document_id)
        if document is None or document.package_id != package.id:
            raise ItemNotFound("no such document in this package")
        return await self._document(package_key, document, headers)

    async def _document(
        self, package_key: bytes, document: Document, headers: Headers
    ) -> StreamingResponse:
        return await object_response(
            self.runtime.store,
            package_key,
            document,
            media_type="application/pdf",
            request_headers=headers,
        )

    async def item_content(
        self, package_id: str, item_id: str, headers: Headers
    ) -> StreamingResponse:
        """One item of the package as ``archive?item=<id>`` (a study) or
        ``documents/{id}`` (a document) answer it, with its kind in ``X-HDS-Item-Kind``.

        The item's kind comes from which index row holds its id (no metadata is
        decrypted for it); the body is then produced from the rows of that one item,
        decrypted once."""
        package, package_key = await self._open(package_id)
        kind: ItemContentKind
        study = await self.index.study(item_id)
        if study is not None and study.package_id == package.id:
            kind = "study"
            response = await self._archive(package, package_key, [study], [], item_id, headers)
        else:
            document = await self.index.document(item_id)
            if document is None or document.package_id != package.id:
                raise ItemNotFound("no such item in this package", items=[item_id])
            kind = "document"
            response = await self._document(package_key, document, headers)
        response.headers[ITEM_KIND_HEADER] = kind
        return response
