"""Public routes under ``/storage/v1`` (account token; the token's grant opens key slots)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect

from hds_common.errors import BadRequest, UnsupportedMediaType
from hds_storage.access import InstitutionDep, KeyHolderDep, PathId, PrincipalDep, StateDep
from hds_storage.db import SessionDep
from hds_storage.holdings import HoldingsService, delete_item
from hds_storage.ingest.multipart import MultipartReader, Part, multipart_boundary, single_part
from hds_storage.ingest.service import DOCUMENT_FIELDS, IngestService
from hds_storage.packages import PackageService
from hds_storage.repository import StorageRepository
from hds_storage.schemas import (
    DocumentPublic,
    DocumentsUploaded,
    InstancesUploaded,
    PackagePublic,
    PatientHoldings,
    SharePublic,
    ShareRequest,
    SharesPublic,
    StudyDetail,
    StudyPublic,
    UsagePublic,
)
from hds_storage.shares import ShareService

router = APIRouter(prefix="/storage/v1")

_BINARY = {"schema": {"type": "string", "format": "binary"}}
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
            "application/dicom": _BINARY,
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
_SHARE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Shared with this recipient before: the existing share"},
    400: {"description": "share-with-self"},
    404: {
        "description": "recipient-not-found: unknown, inactive or not accepting shares "
        "(one answer for all three)"
    },
    409: {"description": "package-incomplete: the package is still being published"},
    507: {"description": "Does not fit the recipient's quota (manual deletion mode)"},
}
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": _BINARY}},
    206: {"description": "Partial content (Range)"},
    416: {"description": "Range not satisfiable"},
}


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequest("invalid Content-Length", slug="bad-request")
    return int(raw)


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a vanished client is not a server error."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise BadRequest(
            "the client went away before the body was complete", slug="client-disconnected"
        ) from None


async def _one(part: Part) -> AsyncIterator[Part]:
    yield part


def _json(model: BaseModel, created: bool) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=201 if created else 200)


# -- ingest (institutions) ------------------------------------------------------------------


@router.post("/packages", status_code=201, tags=["ingest"], summary="Open a new package")
async def create_package(
    holder: InstitutionDep, state: StateDep, session: SessionDep
) -> PackagePublic:
    return await PackageService(state, StorageRepository(session)).create(holder)


@router.get("/packages", tags=["ingest"], summary="The institution's packages")
async def list_packages(
    holder: InstitutionDep, state: StateDep, session: SessionDep
) -> list[PackagePublic]:
    return await PackageService(state, StorageRepository(session)).list_own(holder)


@router.get("/packages/{package_id}", tags=["ingest"], summary="One of the institution's packages")
async def get_package(
    package_id: PathId, holder: InstitutionDep, state: StateDep, session: SessionDep
) -> PackagePublic:
    return await PackageService(state, StorageRepository(session)).get(holder, package_id)


@router.post(
    "/packages/{package_id}/instances",
    tags=["ingest"],
    summary="Upload DICOM instances (all or nothing)",
    response_model=InstancesUploaded,
    status_code=201,
    openapi_extra=_INSTANCES_BODY,
    responses={
        200: {"description": "Every instance was stored before with the same bytes"},
        409: {"description": "Same SOP Instance UID with different bytes, or package complete"},
        415: {"description": "A part is not a DICOM Part 10 file (the problem names it)"},
        507: {"description": "Quota exceeded (manual deletion mode)"},
    },
)
async def upload_instances(
    package_id: PathId, request: Request, holder: InstitutionDep, state: StateDep
) -> JSONResponse:
    content_type = request.headers.get("content-type")
    boundary = multipart_boundary(content_type)
    if boundary is not None:
        parts = MultipartReader(_body(request), boundary).parts()
    elif parse_options_header(content_type)[0] == b"application/dicom":
        parts = _one(single_part(_body(request), content_type=content_type))
    else:
        raise UnsupportedMediaType(
            "send DICOM files as multipart/form-data or one as application/dicom",
            slug="unsupported-content",
            part="body",
        )
    result, created = await IngestService(state).upload_instances(
        holder,
        package_id,
        parts,
        content_length=_content_length(request),
        multipart=boundary is not None,
    )
    return _json(result, created)


@router.post(
    "/packages/{package_id}/documents",
    tags=["ingest"],
    summary="Upload PDF reports assigned to the package's patient (all or nothing)",
    response_model=DocumentsUploaded,
    status_code=201,
    openapi_extra=_DOCUMENTS_BODY,
    responses={
        415: {"description": "A file part is not a PDF (the problem names it)"},
        422: {"description": "Missing or mismatching patient assignment"},
        507: {"description": "Quota exceeded (manual deletion mode)"},
    },
)
async def upload_documents(
    package_id: PathId, request: Request, holder: InstitutionDep, state: StateDep
) -> JSONResponse:
    boundary = multipart_boundary(request.headers.get("content-type"))
    if boundary is None:
        raise UnsupportedMediaType(
            "send PDF files with their patient assignment as multipart/form-data",
            slug="unsupported-content",
            part="body",
        )
    result, created = await IngestService(state).upload_documents(
        holder,
        package_id,
        MultipartReader(_body(request), boundary).parts(),
        content_length=_content_length(request),
    )
    return _json(result, created)


@router.post(
    "/packages/{package_id}/complete",
    tags=["ingest"],
    summary="Complete a package: consumers can see it from now on",
)
async def complete_package(
    package_id: PathId, holder: InstitutionDep, state: StateDep, session: SessionDep
) -> PackagePublic:
    return await PackageService(state, StorageRepository(session)).complete(holder, package_id)


# -- holdings (any account) -------------------------------------------------------------------


@router.get("/patients", tags=["holdings"], summary="Patients of the items the account holds")
async def list_patients(
    holder: KeyHolderDep, state: StateDep, session: SessionDep
) -> list[PatientHoldings]:
    return await HoldingsService(state, StorageRepository(session)).patients(holder)


@router.get("/studies", tags=["holdings"], summary="Studies the account holds")
async def list_studies(
    holder: KeyHolderDep,
    state: StateDep,
    session: SessionDep,
    patient: Annotated[str | None, Query(description="Patient record id")] = None,
) -> list[StudyPublic]:
    return await HoldingsService(state, StorageRepository(session)).studies(holder, patient=patient)


@router.get("/studies/{study_id}", tags=["holdings"], summary="A study with series and instances")
async def get_study(
    study_id: PathId, holder: KeyHolderDep, state: StateDep, session: SessionDep
) -> StudyDetail:
    return await HoldingsService(state, StorageRepository(session)).study(holder, study_id)


@router.get(
    "/studies/{study_id}/archive",
    tags=["holdings"],
    summary="A study as IHE PDI ZIP (Range, If-Range)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": _BINARY}},
        206: _STREAM[206],
        416: _STREAM[416],
    },
)
async def study_archive(
    study_id: PathId, request: Request, holder: KeyHolderDep, state: StateDep, session: SessionDep
) -> StreamingResponse:
    return await HoldingsService(state, StorageRepository(session)).study_archive(
        holder, study_id, request.headers
    )


@router.delete(
    "/studies/{study_id}", tags=["holdings"], status_code=204, summary="Delete a whole study"
)
async def delete_study(study_id: PathId, principal: PrincipalDep, state: StateDep) -> Response:
    await delete_item(state, principal.account_id, study_id, "study")
    # The room made may let shares waiting for it in.
    await ShareService(state).accept_waiting(principal.account_id)
    return Response(status_code=204)


@router.get("/documents", tags=["holdings"], summary="Documents the account holds")
async def list_documents(
    holder: KeyHolderDep,
    state: StateDep,
    session: SessionDep,
    patient: Annotated[str | None, Query(description="Patient record id")] = None,
) -> list[DocumentPublic]:
    return await HoldingsService(state, StorageRepository(session)).documents(
        holder, patient=patient
    )


@router.delete(
    "/documents/{document_id}", tags=["holdings"], status_code=204, summary="Delete a document"
)
async def delete_document(
    document_id: PathId, principal: PrincipalDep, state: StateDep
) -> Response:
    await delete_item(state, principal.account_id, document_id, "document")
    await ShareService(state).accept_waiting(principal.account_id)
    return Response(status_code=204)


@router.get(
    "/objects/{object_id}",
    tags=["holdings"],
    summary="One decrypted instance or document (Range, If-Range)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/dicom": _BINARY, "application/pdf": _BINARY}},
        206: _STREAM[206],
        416: _STREAM[416],
        500: {"description": "integrity-error: the stored object failed authentication"},
    },
)
async def get_object(
    object_id: PathId, request: Request, holder: KeyHolderDep, state: StateDep, session: SessionDep
) -> StreamingResponse:
    return await HoldingsService(state, StorageRepository(session)).object(
        holder, object_id, request.headers
    )


@router.get("/usage", tags=["holdings"], summary="Quota and usage of the account")
async def usage(holder: PrincipalDep, state: StateDep, session: SessionDep) -> UsagePublic:
    return await HoldingsService(state, StorageRepository(session)).usage(holder.account_id)


# -- shares -----------------------------------------------------------------------------------


@router.post(
    "/studies/{study_id}/shares",
    tags=["shares"],
    summary="Share a study with another account (by e-mail address or account id)",
    response_model=SharePublic,
    status_code=201,
    responses=_SHARE_RESPONSES,
)
async def share_study(
    study_id: PathId, body: ShareRequest, holder: KeyHolderDep, state: StateDep
) -> JSONResponse:
    share, created = await ShareService(state).share_item(holder, "study", study_id, body.recipient)
    return _json(share, created)


@router.post(
    "/documents/{document_id}/shares",
    tags=["shares"],
    summary="Share a document with another account (by e-mail address or account id)",
    response_model=SharePublic,
    status_code=201,
    responses=_SHARE_RESPONSES,
)
async def share_document(
    document_id: PathId, body: ShareRequest, holder: KeyHolderDep, state: StateDep
) -> JSONResponse:
    share, created = await ShareService(state).share_item(
        holder, "document", document_id, body.recipient
    )
    return _json(share, created)


@router.post(
    "/packages/{package_id}/shares",
    tags=["shares"],
    summary="Deliver a complete package to an account, e.g. a referrer (its institution)",
    response_model=SharePublic,
    status_code=201,
    responses=_SHARE_RESPONSES,
)
async def share_package(
    package_id: PathId, body: ShareRequest, holder: InstitutionDep, state: StateDep
) -> JSONResponse:
    share, created = await ShareService(state).share_package(holder, package_id, body.recipient)
    return _json(share, created)


@router.get("/shares", tags=["shares"], summary="Shares the account gave and received")
async def list_shares(principal: PrincipalDep, state: StateDep) -> SharesPublic:
    return await ShareService(state).shares(principal.account_id)


@router.post(
    "/shares/{share_id}/accept",
    tags=["shares"],
    summary="Take a waiting share into the holdings (the recipient), once it fits",
    responses={
        404: {"description": "share-not-found, or share-gone: what it gave no longer exists"},
        507: {"description": "It still does not fit; nothing is deleted for it"},
    },
)
async def accept_share(share_id: PathId, principal: PrincipalDep, state: StateDep) -> SharePublic:
    return await ShareService(state).accept(principal.account_id, share_id)


@router.delete(
    "/shares/{share_id}",
    tags=["shares"],
    status_code=204,
    summary="End a share (sharer or recipient; declines a waiting one): the recipient "
    "loses what came with it",
)
async def revoke_share(share_id: PathId, principal: PrincipalDep, state: StateDep) -> Response:
    await ShareService(state).revoke(principal.account_id, share_id)
    return Response(status_code=204)
