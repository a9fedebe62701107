"""A small in-process cache of ZIP plans, so that Range / resume requests and repeated
downloads of the same items do not decrypt the metadata and lay out the archive again.

The key is a fingerprint of exactly the index rows an archive is planned from (sealed
metadata included) and of the package keys that open them (see
:meth:`hds_storage.downloads.index.IndexReader.archive_content`): any change to the content - an
item deleted, metadata re-sealed, another key - gives another key, so an entry is never
stale, only unused. A plan holds decrypted metadata (the DICOMDIR names the patient), so
entries also expire after a while and the cache stays small: a few recent downloads.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from hds_common.pdi import ZipPlan

__all__ = ["ArchivePlans"]

# Bytes of bookkeeping per archive member beyond its local header and central
# directory record (the plan's part and entry objects): a rough bound, it only has
# to keep the cache's memory in the right order of magnitude.
_PER_ENTRY_OVERHEAD = 400


def plan_size(plan: ZipPlan) -> int:
    """Approximate memory held by a plan: inline files (DICOMDIR, README) and per-member
    records."""
    inline = sum(len(entry.data) for entry in plan.entries if entry.data is not None)
    return inline + plan.central_directory_size + _PER_ENTRY_OVERHEAD * len(plan.entries)


class ArchivePlans:
    """LRU of :class:`ZipPlan` by content fingerprint, bounded in entries, bytes and age."""

    def __init__(
        self, *, max_entries: int = 32, max_bytes: int = 32 << 20, ttl_seconds: float = 600.0
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self._plans: OrderedDict[str, tuple[ZipPlan, int, float]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._plans)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, fingerprint: str) -> ZipPlan | None:
        self.expire()
        found = self._plans.get(fingerprint)
        if found is None:
            return None
        self._plans.move_to_end(fingerprint)
        return found[0]

    def put(self, fingerprint: str, plan: ZipPlan) -> None:
        self.expire()
        size = plan_size(plan)
        if fingerprint in self._plans:
            self._drop(fingerprint)
        if size > self.max_bytes // 4:
            return  # a huge archive would evict everything else; it is planned per request
        self._plans[fingerprint] = (plan, size, time.monotonic() + self.ttl_seconds)
        self._bytes += size
        while len(self._plans) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._plans)))

    def expire(self) -> None:
        """Forget plans older than ``ttl_seconds`` (also called by the maintenance loop,
        so that decrypted metadata does not outlive the TTL in an idle process)."""
        now = time.monotonic()
        for fingerprint in [f for f, (_, _, expires) in self._plans.items() if expires <= now]:
            self._drop(fingerprint)

    def _drop(self, fingerprint: str) -> None:
        _, size, _ = self._plans.pop(fingerprint)
        self._bytes -= size
