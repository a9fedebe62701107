"""Routes of an account's holdings (``/storage/v1``, account token; the token's grant opens
the key slots), and the used bytes of an account for the identity service
(``/internal/v1``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from hds_common.errors import (
    ServiceTokenInvalid,
    problem_responses,
)
from hds_storage.deps import (
    KEY_HOLDER_PROBLEMS,
    PRINCIPAL_PROBLEMS,
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
    IdentityUnavailable,
    ObjectNotFound,
    RangeNotSatisfiableProblem,
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
from hds_storage.openapi import ranged_content
from hds_storage.runtime import Runtime
from hds_storage.schemas import ItemKind
from hds_storage.shares.service import ShareService

public = APIRouter(prefix="/storage/v1", tags=["holdings"])
internal = APIRouter(prefix="/internal/v1", tags=["internal"])


# Narrows a list to the items of one patient.
PatientFilter = Annotated[str | None, Query(description="Patient record id")]


async def _deleted(runtime: Runtime, account_id: str, item_id: str, kind: ItemKind) -> Response:
    await delete_item(runtime, account_id, item_id, kind)
    # The room made may let shares waiting for it in.
    await ShareService(runtime).accept_waiting(account_id)
    return Response(status_code=204)


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
    patient: PatientFilter = None,
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
    responses=ranged_content("application/zip")
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
    responses=problem_responses(*PRINCIPAL_PROBLEMS, StudyNotFound),
)
async def delete_study(study_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    return await _deleted(runtime, principal.account_id, study_id, "study")


@public.get(
    "/documents",
    summary="Documents the account holds",
    responses=problem_responses(*KEY_HOLDER_PROBLEMS),
)
async def list_documents(
    holder: KeyHolderDep,
    service: HoldingsDep,
    patient: PatientFilter = None,
) -> list[DocumentPublic]:
    return await service.documents(holder, patient=patient)


@public.delete(
    "/documents/{document_id}",
    status_code=204,
    summary="Delete a document",
    responses=problem_responses(*PRINCIPAL_PROBLEMS, DocumentNotFound),
)
async def delete_document(
    document_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> Response:
    return await _deleted(runtime, principal.account_id, document_id, "document")


@public.get(
    "/objects/{object_id}",
    summary="One decrypted instance or document (Range, If-Range)",
    response_class=StreamingResponse,
    responses=ranged_content("application/dicom", "application/pdf")
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
    responses=problem_responses(*PRINCIPAL_PROBLEMS, AccountNotFound, IdentityUnavailable),
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
