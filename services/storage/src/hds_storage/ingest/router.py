"""Upload routes of institutions (``/storage/v1``): their bodies stream to the blob store,
bounded by the quota reservation (not by the suite's body limit)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from hds_common.errors import BadRequest, InsufficientStorage, problem_responses
from hds_storage.deps import INSTITUTION_PROBLEMS, InstitutionDep, PathId, RuntimeDep
from hds_storage.errors import (
    ClientDisconnected,
    DicomIncomplete,
    DicomInvalid,
    FieldTooLarge,
    IdentityUnavailable,
    InstanceConflict,
    InvalidDate,
    InvalidField,
    MalformedMultipart,
    NoFiles,
    PackageComplete,
    PackageNotFound,
    PatientMismatch,
    PatientRequired,
    PdfTooLarge,
    UnknownField,
    UnsupportedContent,
    UploadExpired,
)
from hds_storage.ingest.dicom import DicomIngest
from hds_storage.ingest.documents import DOCUMENT_FIELDS, DocumentIngest
from hds_storage.ingest.multipart import MultipartReader, Part, multipart_boundary, single_part
from hds_storage.ingest.schemas import DocumentsUploaded, InstancesUploaded
from hds_storage.openapi import BINARY, also_ok

__all__ = ["INGEST_PATHS", "router"]

router = APIRouter(prefix="/storage/v1", tags=["ingest"])

# The upload routes: their bodies stream to the blob store, bounded by the quota.
INGEST_PATHS = re.compile(r"/storage/v1/packages/[^/]+/(instances|documents)")

_INSTANCES_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "DICOM Part 10 files: several as multipart/form-data parts (any field "
        "names), or one as an application/dicom body. Checked by content, never by name.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "format": "binary"},
                }
            },
            "application/dicom": BINARY,
        },
    }
}
_DOCUMENTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "PDF files (parts with a file name) and the patient assignment as form "
        "fields. patient_id is required; when the package has no patient yet, patient_name "
        "(and patient_birth_date, patient_sex) create it.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        **{name: {"type": "string"} for name in sorted(DOCUMENT_FIELDS)},
                        "file": {"type": "string", "format": "binary"},
                    },
                    "required": ["patient_id", "file"],
                }
            }
        },
    }
}
_ALL_STORED_BEFORE = also_ok("Every instance was stored before with the same bytes")
# What every upload may answer besides its own content checks.
_UPLOAD_PROBLEMS = (
    *INSTITUTION_PROBLEMS,
    BadRequest,
    ClientDisconnected,
    MalformedMultipart,
    FieldTooLarge,
    NoFiles,
    PackageNotFound,
    PackageComplete,
    UnsupportedContent,
    PatientMismatch,
    InsufficientStorage,
    IdentityUnavailable,
    UploadExpired,
)


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequest("invalid Content-Length")
    return int(raw)


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a vanished client is not a server error."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise ClientDisconnected("the client went away before the body was complete") from None


async def _one(part: Part) -> AsyncIterator[Part]:
    yield part


def _json(model: BaseModel, created: bool) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=201 if created else 200)


@router.post(
    "/packages/{package_id}/instances",
    summary="Upload DICOM instances (all or nothing)",
    response_model=InstancesUploaded,
    status_code=201,
    openapi_extra=_INSTANCES_BODY,
    responses=_ALL_STORED_BEFORE
    | problem_responses(*_UPLOAD_PROBLEMS, InstanceConflict, DicomInvalid, DicomIncomplete),
)
async def upload_instances(
    package_id: PathId, request: Request, holder: InstitutionDep, runtime: RuntimeDep
) -> JSONResponse:
    content_type = request.headers.get("content-type")
    boundary = multipart_boundary(content_type)
    if boundary is not None:
        parts = MultipartReader(_body(request), boundary).parts()
    elif parse_options_header(content_type)[0] == b"application/dicom":
        parts = _one(single_part(_body(request), content_type=content_type))
    else:
        raise UnsupportedContent(
            "send DICOM files as multipart/form-data or one as application/dicom", part="body"
        )
    result, created = await DicomIngest(runtime).upload_instances(
        holder,
        package_id,
        parts,
        content_length=_content_length(request),
        multipart=boundary is not None,
    )
    return _json(result, created)


@router.post(
    "/packages/{package_id}/documents",
    summary="Upload PDF reports assigned to the package's patient (all or nothing)",
    response_model=DocumentsUploaded,
    status_code=201,
    openapi_extra=_DOCUMENTS_BODY,
    responses=problem_responses(
        *_UPLOAD_PROBLEMS, PdfTooLarge, PatientRequired, InvalidDate, InvalidField, UnknownField
    ),
)
async def upload_documents(
    package_id: PathId, request: Request, holder: InstitutionDep, runtime: RuntimeDep
) -> JSONResponse:
    boundary = multipart_boundary(request.headers.get("content-type"))
    if boundary is None:
        raise UnsupportedContent(
            "send PDF files with their patient assignment as multipart/form-data", part="body"
        )
    result, created = await DocumentIngest(runtime).upload_documents(
        holder,
        package_id,
        MultipartReader(_body(request), boundary).parts(),
        content_length=_content_length(request),
    )
    return _json(result, created)
