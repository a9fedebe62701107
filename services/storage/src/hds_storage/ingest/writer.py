"""Streaming object writer: plaintext chunks → size, CRC-32, SHA-256 → STREAM encryption
under the object's key → atomic blob put. Constant memory (about one segment plus the
blob store's write buffer); the plaintext never touches a disk."""

from __future__ import annotations

import hashlib
import uuid
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from hds_common.blobstore import BlobStore
from hds_common.crypto import SEGMENT_SIZE, encrypt_stream
from hds_storage.maintenance.collector import blob_key

__all__ = ["Digest", "StoredObject", "hash_only", "store_object"]


class Digest:
    """Size, CRC-32 and SHA-256 of a plaintext, computed on the fly."""

    __slots__ = ("crc32", "sha", "size")

    def __init__(self) -> None:
        self.size = 0
        self.crc32 = 0
        self.sha = hashlib.sha256()

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.crc32 = zlib.crc32(chunk, self.crc32)
        self.sha.update(chunk)

    @property
    def sha256(self) -> str:
        return self.sha.hexdigest()

    def totals(self) -> dict[str, Any]:
        return {"size": self.size, "crc32": self.crc32, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class StoredObject:
    object_id: str
    blob_key: str
    size: int
    crc32: int
    sha256: str
    segment_size: int

    def blob_columns(self) -> dict[str, Any]:
        """The columns an instance or document row keeps of its blob (all but its id)."""
        columns = asdict(self)
        del columns["object_id"]
        return columns


async def store_object(
    store: BlobStore,
    *,
    package_id: str,
    package_key: bytes,
    chunks: AsyncIterable[bytes],
    before_bytes: Callable[[int], Awaitable[None]],
    on_key: Callable[[str], None],
) -> StoredObject:
    """Encrypt ``chunks`` into a new blob. ``before_bytes(n)`` runs before ``n`` more
    plaintext bytes are accepted (quota top-up); ``on_key`` learns the blob key before
    the put starts, so the caller can delete it if the request fails later."""
    object_id = str(uuid.uuid4())
    key = blob_key(package_id, object_id)
    digest = Digest()

    async def plaintext() -> AsyncIterator[bytes]:
        async for chunk in chunks:
            await before_bytes(len(chunk))
            digest.update(chunk)
            yield chunk

    on_key(key)
    await store.put(key, encrypt_stream(package_key, object_id, plaintext(), SEGMENT_SIZE))
    return StoredObject(
        object_id=object_id, blob_key=key, segment_size=SEGMENT_SIZE, **digest.totals()
    )


async def hash_only(chunks: AsyncIterable[bytes]) -> Digest:
    """Read a part that duplicates a stored object only to compare its bytes."""
    digest = Digest()
    async for chunk in chunks:
        digest.update(chunk)
    return digest
