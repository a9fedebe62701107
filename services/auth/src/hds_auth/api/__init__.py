"""HTTP routes of the identity service (HTTP only: logic lives in the service modules)."""

from __future__ import annotations

from fastapi import APIRouter

from hds_auth.api import account, admin, internal, public
from hds_auth.config import Settings

__all__ = ["build_routers"]


def build_routers(settings: Settings) -> list[APIRouter]:
    return [public.router, account.router, admin.router, internal.build_router(settings)]
