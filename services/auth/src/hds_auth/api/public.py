"""Public routes: registration, activation, invitations, login, refresh, logout, reset,
JWKS."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from hds_auth import invitations, service, sessions
from hds_auth.db import SessionDep
from hds_auth.deps import ClientAddressDep, RuntimeDep
from hds_auth.schemas import (
    Accepted,
    AccountCreated,
    Activated,
    ActivateRequest,
    InvitationAccepted,
    InvitationAcceptRequest,
    InvitationOffer,
    LoginRequest,
    PasswordResetDone,
    PasswordResetRequest,
    RefreshRequest,
    RegisterRequest,
    ResendActivationRequest,
    TokenPair,
)

router = APIRouter(tags=["accounts"])

# Token answers must not be cached anywhere (RFC 6749 §5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "/auth/v1/register",
    status_code=status.HTTP_201_CREATED,
    summary="Register a patient or referrer account; answers the recovery code once",
)
async def register(
    body: RegisterRequest, session: SessionDep, runtime: RuntimeDep, response: Response
) -> AccountCreated:
    created = await service.register(
        session,
        runtime,
        email=body.email,
        password=body.password,
        role=body.role,
        name=body.name,
    )
    response.headers.update(NO_STORE)
    return created


@router.get(
    "/auth/v1/invitation",
    summary="What an invitation offers (the link in the invitation mail)",
)
async def invitation_offer(
    token: Annotated[str, Query(min_length=1, max_length=200)],
    session: SessionDep,
    response: Response,
) -> InvitationOffer:
    offer = await invitations.offer(session, token)
    response.headers.update(NO_STORE)
    return offer


@router.post(
    "/auth/v1/invitation/accept",
    status_code=status.HTTP_201_CREATED,
    summary="Accept an invitation with a password of one's own; answers the recovery code once",
)
async def accept_invitation(
    body: InvitationAcceptRequest, session: SessionDep, runtime: RuntimeDep, response: Response
) -> InvitationAccepted:
    account, recovery_code = await invitations.accept(
        session, runtime, token=body.token, password=body.password
    )
    response.headers.update(NO_STORE)
    return InvitationAccepted.model_validate(
        {
            "account_id": account.id,
            "email": account.email,
            "role": account.role,
            "name": account.name,
            "recovery_code": recovery_code,
        }
    )


@router.get("/auth/v1/activate", summary="Activate an account (the link in the mail)")
async def activate_link(
    token: Annotated[str, Query(min_length=1, max_length=200)], session: SessionDep
) -> Activated:
    account = await service.activate(session, token)
    return Activated(account_id=account.id, email=account.email)


@router.post("/auth/v1/activate", summary="Activate an account")
async def activate(body: ActivateRequest, session: SessionDep) -> Activated:
    account = await service.activate(session, body.token)
    return Activated(account_id=account.id, email=account.email)


@router.post(
    "/auth/v1/activation/resend",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a new activation link (same answer for every address)",
)
async def resend_activation(
    body: ResendActivationRequest, session: SessionDep, runtime: RuntimeDep
) -> Accepted:
    await service.resend_activation(session, runtime, email=body.email)
    return Accepted()


@router.post("/auth/v1/login", summary="Log in: access token (with grant) and refresh token")
async def login(
    body: LoginRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientAddressDep,
    response: Response,
) -> TokenPair:
    tokens = await sessions.login(
        session, runtime, email=body.email, password=body.password, client=client
    )
    response.headers.update(NO_STORE)
    return tokens


@router.post("/auth/v1/refresh", summary="Exchange a refresh token for new tokens")
async def refresh(
    body: RefreshRequest, session: SessionDep, runtime: RuntimeDep, response: Response
) -> TokenPair:
    tokens = await sessions.refresh(session, runtime, refresh_token=body.refresh_token)
    response.headers.update(NO_STORE)
    return tokens


@router.post(
    "/auth/v1/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="End the session of a refresh token",
)
async def logout(body: RefreshRequest, session: SessionDep, runtime: RuntimeDep) -> None:
    await sessions.logout(session, runtime, refresh_token=body.refresh_token)


@router.post(
    "/auth/v1/password/reset",
    summary="Set a new password with the recovery code; answers a new recovery code",
)
async def reset_password(
    body: PasswordResetRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    client: ClientAddressDep,
    response: Response,
) -> PasswordResetDone:
    code = await service.reset_password(
        session,
        runtime,
        email=body.email,
        recovery_code=body.recovery_code,
        new_password=body.new_password,
        client=client,
    )
    response.headers.update(NO_STORE)
    return PasswordResetDone(recovery_code=code)


@router.get("/.well-known/jwks.json", tags=["keys"], summary="Public keys of the token issuer")
@router.get("/auth/v1/jwks.json", tags=["keys"], summary="Public keys of the token issuer")
async def jwks(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    # Short: verifiers must see a new key soon after a rotation.
    response.headers["Cache-Control"] = "public, max-age=60"
    return runtime.keyring.jwks()
