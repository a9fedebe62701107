"""What the lifespan builds once (hds_dlx.main), on ``app.state.runtime``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from hds_common.tokens import TokenVerifier
from hds_dlx.clients.auth import AuthClient
from hds_dlx.clients.codes import CodesClient
from hds_dlx.clients.storage import StorageClient
from hds_dlx.config import Settings
from hds_dlx.downloads.streaming import DownloadSlots

__all__ = ["Runtime"]


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    codes: CodesClient
    auth: AuthClient
    storage: StorageClient
    verifier: TokenVerifier
    slots: DownloadSlots
    # The neighbours' plain clients, by name (readiness asks each for /healthz).
    upstream_clients: Mapping[str, httpx.AsyncClient]
