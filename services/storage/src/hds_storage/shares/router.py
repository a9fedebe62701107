"""Routes of shares (``/storage/v1``, account token)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from hds_common.errors import (
    InsufficientStorage,
    ProblemError,
    problem_responses,
)
from hds_storage.deps import (
    KEY_HOLDER_PROBLEMS,
    PRINCIPAL_PROBLEMS,
    InstitutionDep,
    KeyHolderDep,
    PathId,
    PrincipalDep,
    RuntimeDep,
)
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
from hds_storage.openapi import also_ok
from hds_storage.shares.schemas import SharePublic, ShareRequest, SharesPublic
from hds_storage.shares.service import ShareService

router = APIRouter(prefix="/storage/v1", tags=["shares"])
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_EXISTING = also_ok("Shared with this recipient before: the existing share")
_SHARE_PROBLEMS = (
    *KEY_HOLDER_PROBLEMS,
    ShareWithSelf,
    RecipientNotFound,
    PackageIncomplete,
    InsufficientStorage,
    IdentityUnavailable,
)


def _share_route(
    path: str, summary: str, *problems: type[ProblemError]
) -> Callable[[Endpoint], Endpoint]:
    """A route that gives a share: 201 with a new one, 200 with the one this recipient
    was given before."""
    return router.post(
        path,
        summary=summary,
        response_model=SharePublic,
        status_code=201,
        responses=_EXISTING | problem_responses(*_SHARE_PROBLEMS, *problems),
    )


def _json(model: BaseModel, created: bool) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=201 if created else 200)


@_share_route(
    "/studies/{study_id}/shares",
    "Share a study with another account (by e-mail address or account id)",
    StudyNotFound,
)
async def share_study(
    study_id: PathId, body: ShareRequest, holder: KeyHolderDep, runtime: RuntimeDep
) -> JSONResponse:
    share, created = await ShareService(runtime).share_item(
        holder, "study", study_id, body.recipient
    )
    return _json(share, created)


@_share_route(
    "/documents/{document_id}/shares",
    "Share a document with another account (by e-mail address or account id)",
    DocumentNotFound,
)
async def share_document(
    document_id: PathId, body: ShareRequest, holder: KeyHolderDep, runtime: RuntimeDep
) -> JSONResponse:
    share, created = await ShareService(runtime).share_item(
        holder, "document", document_id, body.recipient
    )
    return _json(share, created)


@_share_route(
    "/packages/{package_id}/shares",
    "Deliver a complete package to an account, e.g. a referrer (its institution)",
    RoleRequired,
    PackageNotFound,
    PackageEmpty,
)
async def share_package(
    package_id: PathId, body: ShareRequest, holder: InstitutionDep, runtime: RuntimeDep
) -> JSONResponse:
    share, created = await ShareService(runtime).share_package(holder, package_id, body.recipient)
    return _json(share, created)


@router.get(
    "/shares",
    summary="Shares the account gave and received",
    responses=problem_responses(*PRINCIPAL_PROBLEMS),
)
async def list_shares(principal: PrincipalDep, runtime: RuntimeDep) -> SharesPublic:
    return await ShareService(runtime).shares(principal.account_id)


@router.post(
    "/shares/{share_id}/accept",
    summary="Take a waiting share into the holdings (the recipient), once it fits",
    responses=problem_responses(
        *PRINCIPAL_PROBLEMS, ShareNotFound, ShareGone, InsufficientStorage, IdentityUnavailable
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
    responses=problem_responses(*PRINCIPAL_PROBLEMS, ShareNotFound),
)
async def revoke_share(share_id: PathId, principal: PrincipalDep, runtime: RuntimeDep) -> Response:
    await ShareService(runtime).revoke(principal.account_id, share_id)
    return Response(status_code=204)
