"""What the lifespan builds once per process and every request uses (``app.state.runtime``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hds_common.blobstore import BlobStore
from hds_common.tokens import TokenVerifier
from hds_storage.clients.codes import CodesClient
from hds_storage.clients.identity import IdentityClient
from hds_storage.config import Settings
from hds_storage.downloads.plans import ArchivePlans

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    # Where multi-step workflows open their own transactions
    # (:func:`hds_storage.transactions.workflow_transaction`); requests get theirs from
    # ``hds_common.db.SessionDep``.
    session_maker: async_sessionmaker[AsyncSession]
    store: BlobStore
    grant_key: X25519PrivateKey
    identity: IdentityClient
    verifier: TokenVerifier
    codes: CodesClient
    plans: ArchivePlans = field(default_factory=ArchivePlans)
