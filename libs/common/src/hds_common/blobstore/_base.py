"""The :class:`BlobStore` contract shared by all backends, plus key validation."""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = [
    "CHUNK_SIZE",
    "MAX_KEY_LENGTH",
    "RESERVED_TOP_LEVEL",
    "BlobInfo",
    "BlobStore",
    "check_range",
    "validate_key",
    "validate_prefix",
]

#: Size of the chunks yielded by :meth:`BlobStore.get` (the last one may be shorter).
CHUNK_SIZE = 1024 * 1024

#: S3 limits keys to 1024 bytes; the same limit on both backends keeps keys portable.
MAX_KEY_LENGTH = 1024

#: Most filesystems limit a single path component to 255 bytes.
_MAX_SEGMENT_LENGTH = 255

#: First segment reserved for the filesystem backend's temp files. It is rejected on
#: every backend so that a key valid on one backend is valid on all of them.
RESERVED_TOP_LEVEL = ".tmp"

_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+")
_PREFIX_TAIL_RE = re.compile(r"[A-Za-z0-9._-]*")


def _check_segment(key: str, segment: str, what: str = "key") -> None:
    if segment == "":
        raise ValueError(f"invalid blob {what} {key!r}: empty path segment")
    if segment in (".", ".."):
        raise ValueError(f"invalid blob {what} {key!r}: '.' and '..' segments are not allowed")
    if len(segment) > _MAX_SEGMENT_LENGTH:
        raise ValueError(f"invalid blob {what} {key!r}: segment longer than {_MAX_SEGMENT_LENGTH}")
    if _SEGMENT_RE.fullmatch(segment) is None:
        raise ValueError(f"invalid blob {what} {key!r}: only [A-Za-z0-9._-] and '/' are allowed")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid blob key, else raise ``ValueError``.

    A key is a relative path of ``/``-separated segments made of ``[A-Za-z0-9._-]``;
    absolute paths, empty segments (``a//b``, trailing ``/``), ``.``/``..`` segments
    and the reserved top-level ``.tmp`` are rejected. The check is deliberately
    strict so that a key can never escape the filesystem root and means the same
    thing on every backend.
    """
    if not isinstance(key, str):
        raise TypeError(f"blob key must be str, not {type(key).__name__}")
    if key == "":
        raise ValueError("invalid blob key: empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"invalid blob key: longer than {MAX_KEY_LENGTH} characters")
    if key.startswith("/"):
        raise ValueError(f"invalid blob key {key!r}: absolute paths are not allowed")
    segments = key.split("/")
    for segment in segments:
        _check_segment(key, segment)
    if segments[0] == RESERVED_TOP_LEVEL:
        raise ValueError(f"invalid blob key {key!r}: {RESERVED_TOP_LEVEL!r} is reserved")
    return key


def validate_prefix(prefix: str) -> str:
    """Validate a listing prefix: ``""``, or a key prefix that may end mid-segment.

    Every complete segment (those followed by ``/``) must be a valid key segment;
    the trailing partial segment may be empty or any run of allowed characters
    other than ``..``.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"blob prefix must be str, not {type(prefix).__name__}")
    if prefix == "":
        return prefix
    if len(prefix) > MAX_KEY_LENGTH:
        raise ValueError(f"invalid blob prefix: longer than {MAX_KEY_LENGTH} characters")
    if prefix.startswith("/"):
        raise ValueError(f"invalid blob prefix {prefix!r}: absolute paths are not allowed")
    *complete, tail = prefix.split("/")
    for segment in complete:
        _check_segment(prefix, segment, "prefix")
    if tail == ".." or _PREFIX_TAIL_RE.fullmatch(tail) is None:
        raise ValueError(f"invalid blob prefix {prefix!r}")
    return prefix


def check_range(start: int, end: int | None) -> None:
    """Validate a ``get`` byte range ``[start, end)``.

    Ranges reaching past the end of the blob are *clamped* (not an error), exactly
    like Python slicing: ``start`` at or beyond the size yields no bytes, ``end``
    beyond the size stops at the last byte. Negative offsets and ``end < start``
    are programming errors and raise ``ValueError``.
    """
    if start < 0:
        raise ValueError(f"range start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"range end ({end}) must be >= start ({start})")


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """Metadata of a stored blob."""

    key: str
    size: int


class BlobStore(abc.ABC):
    """Streaming, atomic key/value store for large binary objects.

    Lifecycle: construct, then ``await store.open()`` (or ``async with store:``)
    once from the application lifespan, and ``await store.close()`` on shutdown.
    All methods are coroutine-safe; many puts/gets may run concurrently.

    Semantics shared by every backend (the contract suite in
    ``tests/common/blobstore/test_common_blobstore.py`` runs against each of them):

    * ``put`` is atomic: readers see either the previous blob or the complete new
      one, never a partial write. If the source iterator raises, or the task is
      cancelled, nothing becomes visible and no temp file / multipart upload is
      left behind; the source's exception propagates unchanged.
    * ``get`` yields ``CHUNK_SIZE`` chunks of ``[start, end)``; out-of-range bounds
      are clamped (see :func:`check_range`). A missing key raises
      :class:`BlobNotFound` on the first iteration.
    * ``list`` yields blobs whose key starts with ``prefix`` (plain string prefix,
      as in S3), sorted by key.
    * Keys are validated by :func:`validate_key` (``ValueError``).
    """

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Acquire resources (clients, directories). Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release resources. Idempotent."""

    @abc.abstractmethod
    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Atomically store the concatenation of ``chunks`` under ``key``.

        Returns the number of bytes written. Replaces an existing blob atomically.
        """

    @abc.abstractmethod
    def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncGenerator[bytes, None]:
        """Stream bytes ``[start, end)`` of the blob in chunks of ``CHUNK_SIZE``.

        Typed as an async *generator* (a subtype of ``AsyncIterator``) so that a
        consumer that stops early can release the file / HTTP connection at once
        with ``contextlib.aclosing(store.get(...))`` instead of waiting for GC.
        """

    @abc.abstractmethod
    async def stat(self, key: str) -> BlobInfo:
        """Return the blob's metadata or raise :class:`BlobNotFound`."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the blob; deleting a missing key is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncGenerator[BlobInfo, None]:
        """Yield the blobs whose key starts with ``prefix``, sorted by key.

        Streams (no full listing in memory); close early with ``aclosing``.
        """

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`BlobStoreError` if the store is unreachable (readiness probe)."""

    async def put_bytes(self, key: str, data: bytes) -> int:
        """Convenience wrapper: store an in-memory payload."""

        async def one_chunk() -> AsyncGenerator[bytes, None]:
            yield data

        return await self.put(key, one_chunk())

    async def get_bytes(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        """Convenience wrapper: read a (small) range into memory."""
        parts = [chunk async for chunk in self.get(key, start, end)]
        return b"".join(parts)
