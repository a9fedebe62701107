"""Routes of the token issuer's keys: the published key set (JWKS) for every verifier,
and the rotation to a new signing key (administrators only)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Response

from hds_auth.deps import TOKEN_PROBLEMS, RuntimeDep, require_admin
from hds_auth.errors import AdminOnly
from hds_auth.signing.schemas import SigningKeyRotated
from hds_common.errors import problem_responses

router = APIRouter()


@router.get("/.well-known/jwks.json", tags=["keys"], summary="Public keys of the token issuer")
@router.get("/auth/v1/jwks.json", tags=["keys"], summary="Public keys of the token issuer")
async def jwks(runtime: RuntimeDep, response: Response) -> dict[str, Any]:
    # Short: verifiers must see a new key soon after a rotation.
    response.headers["Cache-Control"] = "public, max-age=60"
    return runtime.keyring.jwks()


@router.post(
    "/auth/v1/admin/signing-keys/rotate",
    tags=["administration"],
    summary="Start signing with a new key; the previous one stays published until its "
    "tokens have expired",
    dependencies=[Depends(require_admin)],
    responses=problem_responses(*TOKEN_PROBLEMS, AdminOnly),
)
async def rotate_signing_key(runtime: RuntimeDep) -> SigningKeyRotated:
    key = await asyncio.to_thread(runtime.keyring.rotate)
    return SigningKeyRotated(
        kid=key.kid, published_kids=[k.kid for k in runtime.keyring.published()]
    )
