"""Exceptions raised by blob stores."""

from __future__ import annotations

__all__ = ["BlobNotFound", "BlobStoreError"]


class BlobStoreError(Exception):
    """The store failed (I/O error, unreachable endpoint, misconfiguration).

    Backend-specific exceptions (``OSError``, botocore errors) are wrapped so that
    callers only have to handle this hierarchy; the original is kept as ``__cause__``.
    """


class BlobNotFound(BlobStoreError):
    """No blob exists under the requested key."""

    def __init__(self, key: str) -> None:
        super().__init__(f"blob not found: {key!r}")
        self.key = key
