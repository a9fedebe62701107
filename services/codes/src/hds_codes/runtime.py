"""What the lifespan builds once and the routes share: clients, keys, clock, metrics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hds_codes.clients.identity import IdentityClient
from hds_codes.clients.storage import StorageClient
from hds_codes.config import Settings
from hds_codes.lookup import LookupKey
from hds_codes.slots import KeyDeriver
from hds_common.db import utcnow
from hds_common.tokens import TokenVerifier

__all__ = ["Clock", "CodesMetrics", "Runtime"]

Clock = Callable[[], dt.datetime]


class CodesMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # Outcomes: success, expired (answers right), rejected (wrong answer or unknown
        # code), locked (code locked, answer not evaluated).
        self.validations = Counter(
            "hds_codes_validations_total",
            "Access code validations by outcome",
            ["outcome"],
            registry=registry,
        )
        self.issued = Counter("hds_codes_issued_total", "Access codes issued", registry=registry)
        self.delayed = Counter(
            "hds_codes_client_delayed_total",
            "Validations slowed down because their client address is over its failure allowance",
            registry=registry,
        )


@dataclass
class Runtime:
    settings: Settings
    session_maker: async_sessionmaker[AsyncSession]
    lookup: LookupKey
    deriver: KeyDeriver
    verifier: TokenVerifier
    identity: IdentityClient
    storage: StorageClient
    metrics: CodesMetrics
    # Replaced in tests to move through expiry and lock periods.
    clock: Clock = field(default=utcnow)

    def now(self) -> dt.datetime:
        return self.clock()
