"""Routes of an account's holdings (``/storage/v1``, account token; the token's grant opens
the key slots), and the used bytes of an account for the identity service
(``/internal/v1``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from hds_common.errors import (
    InvalidToken,
    MissingToken,
    ServiceTokenInvalid,
    problem_responses,
)
from hds_storage.deps import (
    CallingServiceDep,
    HoldingsDep,
    KeyHolderDep,
    PathId,
    PrincipalDep,
    RuntimeDep,
    SessionDep,
)
from hds_storage.errors import (
    AccountNotFound,
    DocumentNotFound,
    GrantInvalid,
    GrantRequired,
    IdentityUnavailable,
    IntegrityFailure,
    NoKeySlot,
    ObjectNotFound,
    RangeNotSatisfiableProblem,
    SessionEnded,
    StudyNotFound,
)
from hds_storage.holdings.schemas import (
    AccountUsage,
    DocumentPublic,
    PatientHoldings,
    StudyDetail,
    StudyPublic,
    UsagePublic,
)
from hds_storage.holdings.service import delete_item, used_bytes
from hds_storage.shares.service import ShareService

public = APIRouter(prefix="/storage/v1", tags=["holdings"])
internal = APIRouter(prefix="/internal/v1", tags=["internal"])


_BINARY = {"schema": {"type": "string", "format": "binary"}}
_PARTIAL: dict[int | str, dict[str, Any]] = {206: {"description": "Partial content (Range)"}}
# What every route of an account's own key slots may answer before it runs.
KEY_HOLDER_PROBLEMS = (
    MissingToken,
    InvalidToken,
    GrantRequired,
    GrantInvalid,
    SessionEnded,
    NoKeySlot,
    IntegrityFailure,
)


@public.get(
    "/patients",
    summary="Patients of the items the account holds",
    responses=problem_responses(*KEY_HOLDER_PROBLEMS),
)
async def list_patients(holder: KeyHolderDep, service: HoldingsDep) -> list[PatientHoldings]:
    return await service.patients(holder)


@public.get(
    "/studies",
    summary="Studies the account holds",
    responses=problem_responses(*KEY_HOLDER_PROBLEMS),
)
async def list_studies(
    holder: KeyHolderDep,
    service: HoldingsDep,
    patient: Annotated[str | None, Query(description="Patient record id")] = None,
) -> list[StudyPublic]:
    return await service.studies(holder, patient=patient)


@public.get(
    "/studies/{study_id}",
    summary="A study with series and instances",
    responses=problem_responses(*KEY_HOLDER_PROBLEMS, StudyNotFound),
)
async def get_study(study_id: PathId, holder: KeyHolderDep, service: HoldingsDep) -> StudyDetail:
    return await service.study(holder, study_id)


@public.get(
    "/studies/{study_id}/archive",
    summary="A study as IHE PDI ZIP (Range, If-Range)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": _BINARY}}}
    | _PARTIAL
    | problem_responses(*KEY_HOLDER_PROBLEMS, StudyNotFound, RangeNotSatisfiableProblem),
)
async def study_archive(
    study_id: PathId,
    request: Request,
    holder: KeyHolderDep,
    service: HoldingsDep,
) -> StreamingResponse:
    return await service.study_archive(holder, study_id, request.headers)


@public.delete(
    "/studies/{study_id}",
    status_code=204,
    summary="Delete a whole study",
    responses=problem_responses(MissingToken, InvalidToken, StudyNotFound),
)
async def delete_study(study_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    await delete_item(runtime, principal.account_id, study_id, "study")
    # The room made may let shares waiting for it in.
    await ShareService(runtime).accept_waiting(principal.account_id)
    return Response(status_code=204)


@public.get(
    "/documents",
    summary="Documents the account holds",
    responses=problem_responses(*KEY_HOLDER_PROBLEMS),
)
async def list_documents(
    holder: KeyHolderDep,
    service: HoldingsDep,
    patient: Annotated[str | None, Query(description="Patient record id")] = None,
) -> list[DocumentPublic]:
    return await service.documents(holder, patient=patient)


@public.delete(
    "/documents/{document_id}",
    status_code=204,
    summary="Delete a document",
    responses=problem_responses(MissingToken, InvalidToken, DocumentNotFound),
)
async def delete_document(
    document_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    await delete_item(runtime, principal.account_id, document_id, "document")
    await ShareService(runtime).accept_waiting(principal.account_id)
    return Response(status_code=204)


@public.get(
    "/objects/{object_id}",
    summary="One decrypted instance or document (Range, If-Range)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/dicom": _BINARY, "application/pdf": _BINARY}}}
    | _PARTIAL
    | problem_responses(*KEY_HOLDER_PROBLEMS, ObjectNotFound, RangeNotSatisfiableProblem),
)
async def get_object(
    object_id: PathId,
    request: Request,
    holder: KeyHolderDep,
    service: HoldingsDep,
) -> StreamingResponse:
    return await service.object(holder, object_id, request.headers)


@public.get(
    "/usage",
    summary="Quota and usage of the account",
    responses=problem_responses(MissingToken, InvalidToken, AccountNotFound, IdentityUnavailable),
)
async def usage(holder: PrincipalDep, service: HoldingsDep) -> UsagePublic:
    return await service.usage(holder.account_id)


@internal.get(
    "/usage/{account_id}",
    summary="Used bytes of an account (its quota is the identity service's own)",
    responses=problem_responses(ServiceTokenInvalid, AccountNotFound),
)
async def account_usage(
    account_id: PathId, _: CallingServiceDep, session: SessionDep
) -> AccountUsage:
    """Answered from storage's own usage record, without asking the identity service
    back: this is the identity service asking (its ``/auth/v1/me``)."""
    return AccountUsage(used_bytes=await used_bytes(session, account_id))
