"""Stand-ins for the DLX service's neighbours (codes, auth, storage) in its tests.

They speak exactly the internal contracts of docs/architecture.md — service token on
``/internal`` routes, ``X-HDS-Grant`` on the package routes, the same JSON shapes and
status codes — with in-memory data instead of databases and encryption. The storage
stand-in serves real IHE PDI ZIPs built with :mod:`hds_common.pdi` from real DICOM files,
with ``Content-Length``, ``ETag``, ``Accept-Ranges`` and ``Range``/``If-Range`` → 206.
The lead runs the same flows against the real services later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from hds_common.app import create_service_app
from hds_common.errors import Conflict, Forbidden, NotFound, Unauthorized, problem_type
from hds_common.pdi import (
    PdiDocument,
    PdiInstance,
    PdiPatient,
    PdiSeries,
    PdiStudy,
    RangeNotSatisfiable,
    content_range,
    parse_range_header,
    pdi_layout,
    plan_zip,
    stream_zip,
)
from hds_common.service_auth import SERVICE_TOKEN_HEADER, verify_service_token
from hds_common.testing.dicom import make_dicom, make_pdf
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import DLX_AUDIENCE

__all__ = [
    "AuthStandin",
    "CodesStandin",
    "StandinDocument",
    "StandinPackage",
    "StandinStudy",
    "StorageStandin",
    "dicom_file",
]

ITEM_KIND_HEADER = "X-HDS-Item-Kind"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _service_dependency(secret: str) -> Any:
    """The service-token check of the real services' ``/internal`` routes."""

    def calling_service(
        token: Annotated[str | None, Header(alias=SERVICE_TOKEN_HEADER)] = None,
    ) -> str:
        return verify_service_token(secret, token)

    return Depends(calling_service)


# --- codes ------------------------------------------------------------------------------


@dataclass
class IssuedCode:
    code_id: str
    package_id: str
    birth_date: dt.date
    grant: str
    expires_at: dt.datetime
    grant_expires_at: dt.datetime
    # The package key session the grant names (storage answers its liveness).
    key_session_id: str = field(default_factory=lambda: secrets.token_hex(16))


class _Validate(BaseModel):
    code: str
    birth_date: dt.date
    client: str


class CodesStandin:
    """``POST /internal/v1/validate``: 200 | 401 (wrong, unknown, locked) | 403 (expired)."""

    max_failures = 3

    def __init__(self, secret: str) -> None:
        self.codes: dict[str, IssuedCode] = {}
        self.failures: Counter[str] = Counter()
        self.calls: list[dict[str, str]] = []
        self.app = create_service_app(
            service="codes-standin", title="codes stand-in", description=""
        )
        service = _service_dependency(secret)

        @self.app.post("/internal/v1/validate", dependencies=[service])
        async def validate(body: _Validate) -> dict[str, str]:
            self.calls.append(
                {
                    "code": body.code,
                    "birth_date": body.birth_date.isoformat(),
                    "client": body.client,
                }
            )
            normalised = body.code.upper().replace("-", "").replace(" ", "")
            issued = self.codes.get(normalised)
            if issued is None or self.failures[normalised] >= self.max_failures:
                raise Unauthorized("invalid code", slug="invalid-code")
            if body.birth_date != issued.birth_date:
                self.failures[normalised] += 1
                raise Unauthorized("invalid code", slug="invalid-code")
            if issued.expires_at <= dt.datetime.now(dt.UTC):
                raise Forbidden("code expired", slug="code-expired")
            self.failures[normalised] = 0
            return {
                "code_id": issued.code_id,
                "package_id": issued.package_id,
                "grant": issued.grant,
                "key_session_id": issued.key_session_id,
                "expires_at": issued.grant_expires_at.isoformat(),
                "code_expires_at": issued.expires_at.isoformat(),
            }

    def issue(
        self,
        *,
        package_id: str,
        birth_date: dt.date,
        grant: str,
        expires_in: dt.timedelta = dt.timedelta(days=30),
        grant_expires_in: dt.timedelta = dt.timedelta(hours=1),
    ) -> str:
        """A new code for the package, as printed: ``XXXX-XXXX-XXXX``."""
        raw = "".join(secrets.choice(_CROCKFORD) for _ in range(12))
        now = dt.datetime.now(dt.UTC)
        self.codes[raw] = IssuedCode(
            code_id=uuid.uuid4().hex,
            package_id=package_id,
            birth_date=birth_date,
            grant=grant,
            expires_at=now + expires_in,
            grant_expires_at=now + grant_expires_in,
        )
        return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"

    def issued(self, code: str) -> IssuedCode:
        return self.codes[code.replace("-", "")]


# --- auth -------------------------------------------------------------------------------


class _MintRequest(BaseModel):
    package_id: str
    code_id: str
    grant: str
    key_session_id: str
    ttl_seconds: int = 600


class AuthStandin:
    """The JWKS and ``POST /internal/v1/dlx-tokens``, signing with a :class:`TestIssuer`."""

    def __init__(self, secret: str, issuer: TestIssuer) -> None:
        self.issuer = issuer
        self.minted: list[dict[str, Any]] = []
        self.jwks_fetches = 0
        self.app = create_service_app(service="auth-standin", title="auth stand-in", description="")
        service = _service_dependency(secret)

        @self.app.get("/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            self.jwks_fetches += 1
            return issuer.jwks

        @self.app.post("/internal/v1/dlx-tokens", dependencies=[service])
        async def dlx_token(body: _MintRequest) -> dict[str, Any]:
            self.minted.append(body.model_dump())
            token = issuer.mint(
                body.code_id,
                audience=DLX_AUDIENCE,
                grant=body.grant,
                ttl=body.ttl_seconds,
                pkg=body.package_id,
                ksid=body.key_session_id,
            )
            return {"token": token, "expires_in": body.ttl_seconds}


# --- storage ----------------------------------------------------------------------------


def dicom_file(
    *,
    patient: PdiPatient,
    study: PdiStudy,
    series_uid: str,
    modality: str,
    sop_uid: str,
    instance_number: int,
    pixels: int,
) -> bytes:
    """A real DICOM Part 10 file (secondary capture, about ``pixels`` bytes of pixel data)."""
    columns = 256
    return make_dicom(
        patient_name=patient.patient_name,
        patient_id=patient.patient_id,
        birth_date=patient.birth_date,
        sex=patient.sex,
        study_uid=study.study_instance_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        sop_class=SecondaryCaptureImageStorage,
        modality=modality,
        study_description=study.study_description,
        study_date=study.study_date,
        study_time=study.study_time,
        accession_number=study.accession_number,
        study_id=study.study_id,
        instance_number=instance_number,
        rows=max(1, pixels // (columns * 2)),  # 16-bit pixels
        columns=columns,
    ).data


@dataclass
class StandinStudy:
    item_id: str
    patient: PdiPatient  # with exactly this one study
    objects: dict[str, bytes]

    @property
    def study(self) -> PdiStudy:
        return self.patient.studies[0]

    def item(self) -> dict[str, Any]:
        modalities = sorted({series.modality for series in self.study.series})
        return {
            "id": self.item_id,
            "kind": "study",
            "mime_type": "application/zip",
            "description": self.study.study_description,
            "study_instance_uid": self.study.study_instance_uid,
            "date": self.study.study_date,
            "modalities": modalities,
            "patient_name": self.patient.patient_name,
            "patient_birth_date": self.patient.birth_date,
            "patient_sex": self.patient.sex,
            "file_count": sum(len(series.instances) for series in self.study.series),
            "size": sum(len(data) for data in self.objects.values()),
        }


@dataclass
class StandinDocument:
    item_id: str
    title: str
    data: bytes
    patient: PdiPatient
    date: str

    def item(self) -> dict[str, Any]:
        return {
            "id": self.item_id,
            "kind": "document",
            "mime_type": "application/pdf",
            "description": self.title,
            "study_instance_uid": None,
            # ISO here, DICOM DA for studies: the service must read both.
            "date": f"{self.date[:4]}-{self.date[4:6]}-{self.date[6:]}",
            "modalities": None,
            "patient_name": self.patient.patient_name,
            "patient_birth_date": self.patient.birth_date,
            "patient_sex": self.patient.sex,
            "file_count": 1,
            "size": len(self.data),
        }


@dataclass
class StandinPackage:
    id: str
    grant: str
    state: str = "complete"
    retry_after: int = 30
    studies: list[StandinStudy] = field(default_factory=list)
    documents: list[StandinDocument] = field(default_factory=list)

    def add_study(
        self,
        *,
        patient: PdiPatient,
        description: str,
        date: str,
        modality: str,
        instances: int,
        pixels: int = 4096,
    ) -> StandinStudy:
        study_uid = generate_uid()
        series_uid = generate_uid()
        blank = PdiStudy(
            study_instance_uid=study_uid,
            study_date=date,
            study_time="101500",
            study_description=description,
            accession_number="ACC" + study_uid[-6:],
            study_id="1",
            series=(),
        )
        objects: dict[str, bytes] = {}
        pdi_instances = []
        for number in range(1, instances + 1):
            sop_uid = generate_uid()
            data = dicom_file(
                patient=patient,
                study=blank,
                series_uid=series_uid,
                modality=modality,
                sop_uid=sop_uid,
                instance_number=number,
                pixels=pixels,
            )
            object_id = uuid.uuid4().hex
            objects[object_id] = data
            pdi_instances.append(
                PdiInstance(
                    object_id=object_id,
                    sop_class_uid=SecondaryCaptureImageStorage,
                    sop_instance_uid=sop_uid,
                    transfer_syntax_uid=ExplicitVRLittleEndian,
                    instance_number=number,
                    size=len(data),
                    crc32=zlib.crc32(data),
                )
            )
        series = PdiSeries(
            series_instance_uid=series_uid,
            modality=modality,
            series_number=1,
            instances=tuple(pdi_instances),
        )
        study = PdiStudy(
            study_instance_uid=study_uid,
            study_date=date,
            study_time=blank.study_time,
            study_description=description,
            accession_number=blank.accession_number,
            study_id=blank.study_id,
            series=(series,),
        )
        entry = StandinStudy(
            item_id=str(uuid.uuid4()),
            patient=PdiPatient(
                patient_id=patient.patient_id,
                patient_name=patient.patient_name,
                birth_date=patient.birth_date,
                sex=patient.sex,
                studies=(study,),
            ),
            objects=objects,
        )
        self.studies.append(entry)
        return entry

    def add_document(self, *, patient: PdiPatient, title: str, date: str) -> StandinDocument:
        document = StandinDocument(
            item_id=str(uuid.uuid4()),
            title=title,
            data=make_pdf(title),
            patient=patient,
            date=date,
        )
        self.documents.append(document)
        return document


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
        service = _service_dependency(secret)

        @self.app.middleware("http")
        async def count(request: Request, call_next: Any) -> Response:
            self.requests.append(request.url.path)
            response: Response = await call_next(request)
            return response

        @self.app.get("/internal/v1/key-sessions/{session_id}", dependencies=[service])
        async def key_session(session_id: str) -> dict[str, str]:
            self.session_checks.append(session_id)
            if session_id in self.ended_sessions:
                raise NotFound("no such live key session", slug="session-not-found")
            return {"session_id": session_id}

        def package_with_grant(package_id: str, grant: str | None) -> StandinPackage:
            package = self.packages.get(package_id)
            if package is None:
                raise NotFound("unknown package", slug="package-not-found")
            if grant != package.grant:
                raise Forbidden("grant does not open this package", slug="grant-invalid")
            return package

        def incomplete(package: StandinPackage) -> Conflict:
            return Conflict(
                "package still open",
                slug="package-incomplete",
                headers={"Retry-After": str(package.retry_after)},
                retry_after=package.retry_after,
            )

        @self.app.get("/internal/v1/packages/{package_id}/status", dependencies=[service])
        async def status(package_id: str) -> dict[str, Any]:
            package = self.packages.get(package_id)
            if package is None:
                raise NotFound("unknown package", slug="package-not-found")
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
                raise NotFound("unknown item", slug="item-not-found")
            if not studies and not documents:  # like storage: nothing (left) to send
                raise NotFound("the package holds no studies or reports", slug="package-empty")
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
                raise NotFound("no such item in this package", slug="item-not-found")
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
                raise NotFound("unknown document", slug="document-not-found")
            return self._document(request, found)

    def add_package(self, *, state: str = "complete") -> StandinPackage:
        package = StandinPackage(id=str(uuid.uuid4()), grant=secrets.token_urlsafe(24), state=state)
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
