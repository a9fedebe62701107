"""Routes of institutions: issue, list, search, expire, reactivate, revoke; QR and sheet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from hds_codes.codes import service
from hds_codes.codes.printables import carrier_sheet_pdf, qr_png, qr_svg
from hds_codes.codes.repository import CodeFilter
from hds_codes.codes.schemas import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    MAX_OFFSET,
    CodeCreate,
    CodeIssued,
    CodePage,
    CodePublic,
    CodeReactivate,
)
from hds_codes.deps import INSTITUTION_PROBLEMS, InstitutionDep, RuntimeDep
from hds_codes.errors import (
    AccountUnknown,
    BirthDateInvalid,
    CodeFormatInvalid,
    CodeNotFound,
    CodeRevoked,
    DateOutOfRange,
    GrantRequired,
    PackageNotFound,
    UpstreamError,
    ValidityOutOfRange,
)
from hds_codes.models import AccessCode, CodeState
from hds_codes.runtime import Runtime
from hds_codes.values import format_code, normalise_code
from hds_common.db import SessionDep
from hds_common.errors import ServiceUnavailable, problem_responses
from hds_common.row_views import view_of

router = APIRouter(prefix="/codes/v1/codes", tags=["codes"])

_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
CodeId = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
CodeQuery = Annotated[
    str,
    Query(
        min_length=1,
        max_length=64,
        description="The access code (the service does not keep it, so the caller "
        "supplies it); must belong to the code id.",
    ),
]


# The printables of a new code: the CodeIssued field and the file name of its route.
_PRINTABLES = {"qr_svg": "qr.svg", "qr_png": "qr.png", "sheet_pdf": "sheet.pdf"}


def _public(row: AccessCode, runtime: Runtime) -> CodePublic:
    now = runtime.now()
    locked = row.locked_until if row.locked_until is not None and row.locked_until > now else None
    return view_of(CodePublic, row, state=service.code_state(row, now), locked_until=locked)


def _utc(value: dt.datetime | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-23:59 is in the year 10000 in UTC
        raise DateOutOfRange(f"{name} is out of range in UTC", parameter=name) from None


@router.post(
    "",
    status_code=201,
    summary="Issue an access code for a package",
    response_model=CodeIssued,
    responses=problem_responses(
        *INSTITUTION_PROBLEMS,
        GrantRequired,
        AccountUnknown,
        BirthDateInvalid,
        ValidityOutOfRange,
        PackageNotFound,
        UpstreamError,
        ServiceUnavailable,
    ),
)
async def issue_code(
    body: CodeCreate,
    institution: InstitutionDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> CodeIssued:
    issued = await service.issue_code(session, runtime, institution=institution, request=body)
    row, code = issued.row, issued.code
    return view_of(
        CodeIssued,
        row,
        code=format_code(code),
        link=service.portal_link(runtime, code),
        **{
            field: service.artifact_link(runtime, row.id, file_name, code)
            for field, file_name in _PRINTABLES.items()
        },
    )


@router.get(
    "",
    summary="List and search the institution's codes",
    response_model=CodePage,
    responses=problem_responses(*INSTITUTION_PROBLEMS, CodeFormatInvalid, DateOutOfRange),
)
async def list_codes(
    institution: InstitutionDep,
    session: SessionDep,
    runtime: RuntimeDep,
    package_id: Annotated[str | None, Query(max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)] = None,
    state: CodeState | None = None,
    created_from: Annotated[
        dt.datetime | None, Query(description="Created at or after (UTC if no zone).")
    ] = None,
    created_to: Annotated[
        dt.datetime | None, Query(description="Created before (UTC if no zone).")
    ] = None,
    code: Annotated[
        str | None,
        Query(max_length=64, description="Find the code with exactly this value."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CodePage:
    lookup_hash = None
    if code is not None:
        lookup_hash = runtime.lookup.code_hash(service.require_code(code))
    criteria = CodeFilter(
        institution_id=institution.sub,
        package_id=package_id,
        state=state,
        created_from=_utc(created_from, "created_from"),
        created_to=_utc(created_to, "created_to"),
        lookup_hash=lookup_hash,
    )
    rows, total = await service.search_codes(
        session, runtime, criteria=criteria, limit=limit, offset=offset
    )
    return CodePage(
        items=[_public(row, runtime) for row in rows], total=total, limit=limit, offset=offset
    )


@router.get(
    "/{code_id}",
    summary="One of the institution's codes",
    response_model=CodePublic,
    responses=problem_responses(*INSTITUTION_PROBLEMS, CodeNotFound),
)
async def get_code(
    code_id: CodeId, institution: InstitutionDep, session: SessionDep, runtime: RuntimeDep
) -> CodePublic:
    row = await service.get_code(session, institution_id=institution.sub, code_id=code_id)
    return _public(row, runtime)


@router.post(
    "/{code_id}/reactivate",
    summary="Make a code valid again (also unlocks it)",
    response_model=CodePublic,
    responses=problem_responses(
        *INSTITUTION_PROBLEMS,
        AccountUnknown,
        CodeNotFound,
        CodeRevoked,
        ValidityOutOfRange,
        UpstreamError,
    ),
)
async def reactivate_code(
    code_id: CodeId,
    institution: InstitutionDep,
    session: SessionDep,
    runtime: RuntimeDep,
    body: Annotated[CodeReactivate | None, Body()] = None,
) -> CodePublic:
    row = await service.reactivate_code(
        session,
        runtime,
        institution_id=institution.sub,
        code_id=code_id,
        validity_days=body.validity_days if body else None,
    )
    return _public(row, runtime)


@router.post(
    "/{code_id}/expire",
    summary="Expire a code now",
    response_model=CodePublic,
    responses=problem_responses(*INSTITUTION_PROBLEMS, CodeNotFound, CodeRevoked, UpstreamError),
)
async def expire_code(
    code_id: CodeId, institution: InstitutionDep, session: SessionDep, runtime: RuntimeDep
) -> CodePublic:
    row = await service.expire_code(
        session, runtime, institution_id=institution.sub, code_id=code_id
    )
    return _public(row, runtime)


@router.post(
    "/{code_id}/revoke",
    summary="Revoke a code for good",
    response_model=CodePublic,
    responses=problem_responses(*INSTITUTION_PROBLEMS, CodeNotFound, UpstreamError),
)
async def revoke_code(
    code_id: CodeId, institution: InstitutionDep, session: SessionDep, runtime: RuntimeDep
) -> CodePublic:
    row = await service.revoke_code(
        session, runtime, institution_id=institution.sub, code_id=code_id
    )
    return _public(row, runtime)


async def checked_link(
    code_id: CodeId,
    code: CodeQuery,
    institution: InstitutionDep,
    session: SessionDep,
    runtime: RuntimeDep,
) -> tuple[AccessCode, str]:
    """Load-or-404: the institution's code whose value the caller supplies (codes are not
    stored, so printables need the value again), with its portal link."""
    row = await service.verify_code_for(
        session, runtime, institution_id=institution.sub, code_id=code_id, code=code
    )
    return row, service.portal_link(runtime, normalise_code(code))


def _binary(media_type: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media_type: {}}}}


# What checked_link answers when the code is not the institution's, or not the code id's.
_PRINTABLE_PROBLEMS = problem_responses(*INSTITUTION_PROBLEMS, CodeNotFound)
CheckedLink = Annotated[tuple[AccessCode, str], Depends(checked_link)]


def _add_qr_route(extension: str, media_type: str, render: Callable[[str], bytes]) -> None:
    """``GET /{code_id}/qr.<extension>``: the QR code of the portal link."""

    async def qr_code(checked: CheckedLink) -> Response:
        _, link = checked
        return Response(render(link), media_type=media_type, headers=_NO_STORE)

    qr_code.__name__ = f"qr_code_{extension}"  # the route's name and operation id
    router.get(
        f"/{{code_id}}/qr.{extension}",
        summary=f"QR code of the portal link ({extension.upper()})",
        response_class=Response,
        responses=_binary(media_type) | _PRINTABLE_PROBLEMS,
    )(qr_code)


_add_qr_route("svg", "image/svg+xml", qr_svg)
_add_qr_route("png", "image/png", qr_png)


@router.get(
    "/{code_id}/sheet.pdf",
    summary="Printable carrier sheet: institution, code, QR code, expiry, instructions",
    response_class=Response,
    responses=_binary("application/pdf")
    | problem_responses(*INSTITUTION_PROBLEMS, CodeNotFound, AccountUnknown),
)
async def carrier_sheet(
    checked: CheckedLink,
    code: CodeQuery,
    institution: InstitutionDep,
    runtime: RuntimeDep,
) -> Response:
    row, link = checked
    account = await runtime.identity.account(institution.sub)
    pdf = carrier_sheet_pdf(
        institution=account.name or "Your radiology practice",
        code=format_code(normalise_code(code)),
        link=link,
        expires_at=row.expires_at,
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            **_NO_STORE,
            "Content-Disposition": 'inline; filename="access-code-sheet.pdf"',
        },
    )
