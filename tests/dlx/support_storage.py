"""The stand-in of storage in the DLX tests: package status, items, one item's content
(``items/{item_id}/content`` with ``X-HDS-Item-Kind``), IHE PDI archives built with
:mod:`hds_common.pdi` from real DICOM files, and documents — with ``Content-Length``,
``ETag``, ``Accept-Ranges`` and ``Range``/``If-Range`` → 206, as the real storage
answers. It records every request it gets (``requests``), so tests can count what one
DLX request costs.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from hds_common.app import create_service_app
from hds_common.errors import Conflict, Forbidden, NotFound, problem_type
from hds_common.pdi import (
    PdiDocument,
    PdiPatient,
    RangeNotSatisfiable,
    content_range,
    parse_range_header,
    pdi_layout,
    plan_zip,
    stream_zip,
)
from tests.dlx.support_packages import (
    StandinDocument,
    StandinPackage,
    StandinStudy,
    new_package,
)
from tests.dlx.support_standins import service_dependency

__all__ = ["ITEM_KIND_HEADER", "README_TEXT", "StorageStandin"]

ITEM_KIND_HEADER = "X-HDS-Item-Kind"


class SessionNotFound(NotFound):
    slug = "session-not-found"


class PackageNotFound(NotFound):
    slug = "package-not-found"


class GrantInvalid(Forbidden):
    slug = "grant-invalid"


class PackageIncomplete(Conflict):
    slug = "package-incomplete"


class ItemNotFound(NotFound):
    slug = "item-not-found"


class PackageEmpty(NotFound):
    slug = "package-empty"


class DocumentNotFound(NotFound):
    slug = "document-not-found"


README_TEXT = "Ihre Bilder / Your images\nÖffnen Sie DICOMDIR mit einem DICOM-Betrachter.\n"
_CHUNK = 256 * 1024


class StorageStandin:
    """Package status, items, an item's content, IHE PDI archives (ranged) and documents."""

    def __init__(self, secret: str) -> None:
        self.packages: dict[str, StandinPackage] = {}
        # The archives asked for (whole package, or a study's content): items, conditions.
        self.archive_requests: list[dict[str, Any]] = []
        # The path of every request, in order (how many calls one DLX request costs).
        self.requests: list[str] = []
        # Answer item contents without X-HDS-Item-Kind (a storage breaking the contract).
        self.omit_item_kind = False
        # Streams pause after ``gate_after`` bytes until ``gate`` is set (tests of
        # concurrency and of clients that go away half-way).
        self.gate: asyncio.Event | None = None
        self.gate_after = 0
        # Streams break off after this many bytes of one object (an upstream failing
        # half-way: the connection closes before the announced length).
        self.fail_after: int | None = None
        self.stream_started = asyncio.Event()
        self.streams_completed = 0
        self.streams_aborted = 0
        # Key sessions that have ended (every other one is live), and the checks asked.
        self.ended_sessions: set[str] = set()
        self.session_checks: list[str] = []
        self.app = create_service_app(
            service="storage-standin", title="storage stand-in", description=""
        )
        service = service_dependency(secret)

        @self.app.middleware("http")
        async def count(request: Request, call_next: Any) -> Response:
            self.requests.append(request.url.path)
            response: Response = await call_next(request)
            return response

        @self.app.get("/internal/v1/key-sessions/{session_id}", dependencies=[service])
        async def key_session(session_id: str) -> dict[str, str]:
            self.session_checks.append(session_id)
            if session_id in self.ended_sessions:
                raise SessionNotFound("no such live key session")
            return {"session_id": session_id}

        def package_with_grant(package_id: str, grant: str | None) -> StandinPackage:
            package = self.packages.get(package_id)
            if package is None:
                raise PackageNotFound("unknown package")
            if grant != package.grant:
                raise GrantInvalid("grant does not open this package")
            return package

        def incomplete(package: StandinPackage) -> PackageIncomplete:
            return PackageIncomplete(
                "package still open",
                headers={"Retry-After": str(package.retry_after)},
                retry_after=package.retry_after,
            )

        @self.app.get("/internal/v1/packages/{package_id}/status", dependencies=[service])
        async def status(package_id: str) -> dict[str, Any]:
            package = self.packages.get(package_id)
            if package is None:
                raise PackageNotFound("unknown package")
            return {
                "id": package.id,
                "state": package.state,
                "institution_id": "inst-1",
                "retry_after": package.retry_after if package.state == "open" else 0,
            }

        @self.app.get("/internal/v1/packages/{package_id}/items", dependencies=[service])
        async def items(
            package_id: str, grant: Annotated[str | None, Header(alias="X-HDS-Grant")] = None
        ) -> list[dict[str, Any]]:
            package = package_with_grant(package_id, grant)
            if package.state != "complete":
                raise incomplete(package)
            return [study.item() for study in package.studies] + [
                document.item() for document in package.documents
            ]

        @self.app.get("/internal/v1/packages/{package_id}/archive", dependencies=[service])
        async def archive(
            package_id: str,
            request: Request,
            item: Annotated[list[str] | None, Query()] = None,
            grant: Annotated[str | None, Header(alias="X-HDS-Grant")] = None,
        ) -> Response:
            package = package_with_grant(package_id, grant)
            if package.state != "complete":
                raise incomplete(package)
            self.archive_requests.append(
                {
                    "items": item,
                    "range": request.headers.get("range"),
                    "if_range": request.headers.get("if-range"),
                }
            )
            wanted = set(item or [])
            studies = [s for s in package.studies if not wanted or s.item_id in wanted]
            documents = [d for d in package.documents if not wanted or d.item_id in wanted]
            if wanted - {s.item_id for s in studies} - {d.item_id for d in documents}:
                raise ItemNotFound("unknown item")
            if not studies and not documents:  # like storage: nothing (left) to send
                raise PackageEmpty("the package holds no studies or reports")
            return self._archive(request, studies, documents)

        @self.app.get(
            "/internal/v1/packages/{package_id}/items/{item_id}/content", dependencies=[service]
        )
        async def item_content(
            package_id: str,
            item_id: str,
            request: Request,
            grant: Annotated[str | None, Header(alias="X-HDS-Grant")] = None,
        ) -> Response:
            """A study's IHE PDI ZIP or a document, with its kind in ``X-HDS-Item-Kind``."""
            package = package_with_grant(package_id, grant)
            if package.state != "complete":
                raise incomplete(package)
            study = next((s for s in package.studies if s.item_id == item_id), None)
            document = next((d for d in package.documents if d.item_id == item_id), None)
            if study is not None:
                self.archive_requests.append(
                    {
                        "items": [item_id],
                        "range": request.headers.get("range"),
                        "if_range": request.headers.get("if-range"),
                    }
                )
                response = self._archive(request, [study], [])
                kind = "study"
            elif document is not None:
                response = self._document(request, document)
                kind = "document"
            else:
                raise ItemNotFound("no such item in this package")
            if not self.omit_item_kind:
                response.headers[ITEM_KIND_HEADER] = kind
            return response

        @self.app.get(
            "/internal/v1/packages/{package_id}/documents/{document_id}", dependencies=[service]
        )
        async def document(
            package_id: str,
            document_id: str,
            request: Request,
            grant: Annotated[str | None, Header(alias="X-HDS-Grant")] = None,
        ) -> Response:
            package = package_with_grant(package_id, grant)
            found = next((d for d in package.documents if d.item_id == document_id), None)
            if found is None:
                raise DocumentNotFound("unknown document")
            return self._document(request, found)

    def add_package(self, *, state: str = "complete") -> StandinPackage:
        package = new_package(state=state)
        self.packages[package.id] = package
        return package

    def _archive(
        self, request: Request, studies: list[StandinStudy], documents: list[StandinDocument]
    ) -> Response:
        objects: dict[str, bytes] = {}
        for study in studies:
            objects.update(study.objects)
        for document in documents:
            objects[document.item_id] = document.data
        plan = plan_zip(
            pdi_layout(
                _merge_patients([study.patient for study in studies]),
                [
                    PdiDocument(
                        object_id=d.item_id,
                        title=d.title,
                        size=len(d.data),
                        crc32=zlib.crc32(d.data),
                    )
                    for d in documents
                ],
                readme_text=README_TEXT,
            )
        )
        return self._ranged(
            request,
            total=plan.total_size,
            etag=plan.etag,
            media_type="application/zip",
            body=lambda start, end: stream_zip(plan, self._open_object(objects), start, end),
        )

    def _document(self, request: Request, document: StandinDocument) -> Response:
        data = document.data
        opener = self._open_object({document.item_id: data})
        return self._ranged(
            request,
            total=len(data),
            etag=f'"{zlib.crc32(data):08x}"',
            media_type="application/pdf",
            body=lambda start, end: opener(document.item_id, start, end - start),
        )

    def _ranged(
        self,
        request: Request,
        *,
        total: int,
        etag: str,
        media_type: str,
        body: Any,
    ) -> Response:
        headers = {"ETag": etag, "Accept-Ranges": "bytes"}
        if_range = request.headers.get("if-range")
        range_header = request.headers.get("range")
        if if_range is not None and if_range != etag:
            range_header = None  # the representation changed: send all of it
        try:
            byte_range = parse_range_header(range_header, total)
        except RangeNotSatisfiable:
            return JSONResponse(
                {
                    "type": problem_type("range-not-satisfiable"),
                    "title": "Range not satisfiable",
                    "status": 416,
                },
                status_code=416,
                headers={"Content-Range": f"bytes */{total}"},
                media_type="application/problem+json",
            )
        start, end = byte_range or (0, total)
        headers["Content-Length"] = str(end - start)
        if byte_range is not None:
            headers["Content-Range"] = content_range(start, end, total)
        return StreamingResponse(
            body(start, end),
            status_code=206 if byte_range is not None else 200,
            headers=headers,
            media_type=media_type,
        )

    def _open_object(self, objects: dict[str, bytes]) -> Any:
        async def open_object(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
            self.stream_started.set()
            data = memoryview(objects[object_id])[offset : offset + length]
            sent = 0
            try:
                for position in range(0, len(data), _CHUNK):
                    if self.gate is not None and sent >= self.gate_after:
                        await self.gate.wait()
                    if self.fail_after is not None and sent >= self.fail_after:
                        raise ConnectionResetError("storage stand-in broke off the stream")
                    chunk = bytes(data[position : position + _CHUNK])
                    sent += len(chunk)
                    yield chunk
            finally:
                if sent < len(data):
                    self.streams_aborted += 1
                else:
                    self.streams_completed += 1

        return open_object


def _merge_patients(patients: list[PdiPatient]) -> list[PdiPatient]:
    merged: dict[str, PdiPatient] = {}
    for patient in patients:
        known = merged.get(patient.patient_id)
        if known is None:
            merged[patient.patient_id] = patient
        else:
            merged[patient.patient_id] = PdiPatient(
                patient_id=known.patient_id,
                patient_name=known.patient_name,
                birth_date=known.birth_date,
                sex=known.sex,
                studies=known.studies + patient.studies,
            )
    return list(merged.values())
