"""Routes of shares (``/storage/v1``, account token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from hds_common.errors import InsufficientStorage, InvalidToken, MissingToken, problem_responses
from hds_storage.deps import InstitutionDep, KeyHolderDep, PathId, PrincipalDep, RuntimeDep
from hds_storage.errors import (
    DocumentNotFound,
    IdentityUnavailable,
    PackageEmpty,
    PackageIncomplete,
    PackageNotFound,
    RecipientNotFound,
    RoleRequired,
    ShareGone,
    ShareNotFound,
    ShareWithSelf,
    StudyNotFound,
)
from hds_storage.holdings.router import KEY_HOLDER_PROBLEMS
from hds_storage.shares.schemas import SharePublic, ShareRequest, SharesPublic
from hds_storage.shares.service import ShareService

router = APIRouter(prefix="/storage/v1", tags=["shares"])

_EXISTING: dict[int | str, dict[str, Any]] = {
    200: {"description": "Shared with this recipient before: the existing share"}
}
_SHARE_PROBLEMS = (
    *KEY_HOLDER_PROBLEMS,
    ShareWithSelf,
    RecipientNotFound,
    PackageIncomplete,
    InsufficientStorage,
    IdentityUnavailable,
)
_ACCOUNT_PROBLEMS = (MissingToken, InvalidToken)


def _json(model: BaseModel, created: bool) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=201 if created else 200)


@router.post(
    "/studies/{study_id}/shares",
    summary="Share a study with another account (by e-mail address or account id)",
    response_model=SharePublic,
    status_code=201,
    responses=_EXISTING | problem_responses(*_SHARE_PROBLEMS, StudyNotFound),
)
async def share_study(
    study_id: PathId, body: ShareRequest, holder: KeyHolderDep, runtime: RuntimeDep
) -> JSONResponse:
    share, created = await ShareService(runtime).share_item(
        holder, "study", study_id, body.recipient
    )
    return _json(share, created)


@router.post(
    "/documents/{document_id}/shares",
    summary="Share a document with another account (by e-mail address or account id)",
    response_model=SharePublic,
    status_code=201,
    responses=_EXISTING | problem_responses(*_SHARE_PROBLEMS, DocumentNotFound),
)
async def share_document(
    document_id: PathId, body: ShareRequest, holder: KeyHolderDep, runtime: RuntimeDep
) -> JSONResponse:
    share, created = await ShareService(runtime).share_item(
        holder, "document", document_id, body.recipient
    )
    return _json(share, created)


@router.post(
    "/packages/{package_id}/shares",
    summary="Deliver a complete package to an account, e.g. a referrer (its institution)",
    response_model=SharePublic,
    status_code=201,
    responses=_EXISTING
    | problem_responses(*_SHARE_PROBLEMS, RoleRequired, PackageNotFound, PackageEmpty),
)
async def share_package(
    package_id: PathId, body: ShareRequest, holder: InstitutionDep, runtime: RuntimeDep
) -> JSONResponse:
    share, created = await ShareService(runtime).share_package(holder, package_id, body.recipient)
    return _json(share, created)


@router.get(
    "/shares",
    summary="Shares the account gave and received",
    responses=problem_responses(*_ACCOUNT_PROBLEMS),
)
async def list_shares(principal: PrincipalDep, runtime: RuntimeDep) -> SharesPublic:
    return await ShareService(runtime).shares(principal.account_id)


@router.post(
    "/shares/{share_id}/accept",
    summary="Take a waiting share into the holdings (the recipient), once it fits",
    responses=problem_responses(
        *_ACCOUNT_PROBLEMS, ShareNotFound, ShareGone, InsufficientStorage, IdentityUnavailable
    ),
)
async def accept_share(
    share_id: PathId, principal: PrincipalDep, runtime: RuntimeDep
) -> SharePublic:
    return await ShareService(runtime).accept(principal.account_id, share_id)


@router.delete(
    "/shares/{share_id}",
    status_code=204,
    summary="End a share (sharer or recipient; declines a waiting one): the recipient "
    "loses what came with it",
    responses=problem_responses(*_ACCOUNT_PROBLEMS, ShareNotFound),
)
async def revoke_share(share_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    await ShareService(runtime).revoke(principal.account_id, share_id)
    return Response(status_code=204)
