"""Downloads: decrypted objects and IHE PDI archives, with Range / If-Range.

Integrity: the first plaintext chunk is produced (its segment authenticated) before the
response headers go out, so a tampered small object is answered with a clean 500
``integrity-error`` problem and a log line. A failure later in a large stream cannot
change the status any more: the stream stops and the connection is aborted (the client
sees fewer bytes than ``Content-Length``); unauthenticated bytes are never sent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing

import structlog
from fastapi.responses import StreamingResponse

from hds_common.blobstore import BlobNotFound, BlobStore, BlobStoreError
from hds_common.crypto import (
    HEADER_SIZE,
    IntegrityError,
    RangeDecryptor,
    decrypt_bytes,
    segment_count,
    segment_span,
)
from hds_common.errors import ServiceUnavailable
from hds_common.pdi import (
    PdiDocument,
    PdiPatient,
    RangeNotSatisfiable,
    ZipStreamError,
    content_range,
    parse_range_header,
    pdi_layout,
    plan_zip,
    stream_zip,
)
from hds_storage.access import integrity_failure
from hds_storage.errors import RangeNotSatisfiableProblem
from hds_storage.models import Document, Instance

__all__ = ["README_TEXT", "archive_response", "object_response", "plaintext"]

log = structlog.get_logger("hds.storage.delivery")

README_TEXT = """\
This archive follows the IHE Portable Data for Imaging (PDI) profile.

DICOMDIR            index of all images, readable by any DICOM viewer
DICOM/              the images, one folder per study and series
IHE_PDI/            reports (PDF)

Open the DICOMDIR with a DICOM viewer to browse the studies.
"""


class StoredObjectCorrupt(Exception):
    """Raised inside a stream (after headers were sent) when an object fails to decrypt."""


async def plaintext(
    store: BlobStore,
    package_key: bytes,
    obj: Instance | Document,
    start: int,
    end: int,
) -> AsyncGenerator[bytes, None]:
    """Authenticated plaintext bytes ``[start, end)`` of a stored object.

    Reads only the segments covering the range (plus the 16-byte header)."""
    size = obj.size
    segment = obj.segment_size
    total_segments = segment_count(size, segment)
    try:
        if size == 0:
            # The single empty final segment still proves the object is what we stored.
            decrypt_bytes(package_key, obj.id, await store.get_bytes(obj.blob_key))
            return
        first, _, c_start, c_end = segment_span(start, end, size, segment)
        skip = start - first * segment
        if first == 0:
            # One read: the header is the first 16 bytes of the same range.
            header = bytearray()
            decryptor: RangeDecryptor | None = None
            # aclosing: a client that goes away releases the blob stream at once.
            async with aclosing(store.get(obj.blob_key, 0, c_end)) as chunks:
                async for chunk in chunks:
                    if decryptor is None:
                        take = HEADER_SIZE - len(header)
                        header += chunk[:take]
                        chunk = chunk[take:]
                        if len(header) < HEADER_SIZE:
                            continue
                        decryptor = RangeDecryptor(
                            package_key, obj.id, bytes(header), 0, total_segments, skip, end - start
                        )
                    for piece in decryptor.feed(chunk):
                        if piece:
                            yield piece
        else:
            header_bytes = await store.get_bytes(obj.blob_key, 0, HEADER_SIZE)
            if len(header_bytes) < HEADER_SIZE:
                raise IntegrityError("stored object shorter than its header")
            decryptor = RangeDecryptor(
                package_key, obj.id, header_bytes, first, total_segments, skip, end - start
            )
            async with aclosing(store.get(obj.blob_key, c_start, c_end)) as chunks:
                async for chunk in chunks:
                    for piece in decryptor.feed(chunk):
                        if piece:
                            yield piece
        if decryptor is None:
            raise IntegrityError("stored object shorter than its header")
        last = decryptor.finish()
        if last:
            yield last
    except BlobNotFound:
        raise IntegrityError("stored object is missing") from None


def _select_range(headers: Mapping[str, str], total: int, etag: str) -> tuple[int, int] | None:
    range_header = headers.get("range")
    if_range = headers.get("if-range")
    if range_header is not None and if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's copy is stale: send the whole representation
    try:
        return parse_range_header(range_header, total)
    except RangeNotSatisfiable:
        raise RangeNotSatisfiableProblem(total) from None


async def _close(iterator: AsyncIterator[bytes]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def _prefetched(
    body: AsyncIterator[bytes], *, what: str, context: Mapping[str, str]
) -> AsyncIterator[bytes]:
    """Produce the first chunk now (authenticating it), the rest while streaming."""
    try:
        first = await anext(body, None)
    except (IntegrityError, ZipStreamError) as exc:
        raise integrity_failure(f"{what}: {exc}", **context) from None
    except BlobStoreError as exc:
        await _close(body)
        raise ServiceUnavailable(
            "the blob store is unavailable", slug="blob-store-unavailable"
        ) from exc

    async def rest() -> AsyncIterator[bytes]:
        if first is not None:
            yield first
        try:
            async for chunk in body:
                yield chunk
        except (IntegrityError, ZipStreamError) as exc:
            log.error("integrity_error", what=f"{what}: {exc}", during="stream", **context)
            raise StoredObjectCorrupt(str(exc)) from None
        finally:
            # Release blob streams at once when the client goes away mid-download.
            await _close(body)

    return rest()


async def object_response(
    store: BlobStore,
    package_key: bytes,
    obj: Instance | Document,
    *,
    media_type: str,
    request_headers: Mapping[str, str],
) -> StreamingResponse:
    total = obj.size
    etag = f'"{obj.sha256}"'
    selected = _select_range(request_headers, total, etag)
    start, end = selected or (0, total)
    body = await _prefetched(
        plaintext(store, package_key, obj, start, end),
        what="stored object failed authentication",
        context={"object_id": obj.id, "package_id": obj.package_id},
    )
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Content-Length": str(end - start),
        "Cache-Control": "private, no-store",
    }
    status = 200
    if selected is not None:
        status = 206
        headers["Content-Range"] = content_range(start, end, total)
    return StreamingResponse(body, status_code=status, media_type=media_type, headers=headers)


async def archive_response(
    store: BlobStore,
    keys: Mapping[str, bytes],
    patients: list[PdiPatient],
    documents: list[PdiDocument],
    objects: Mapping[str, Instance | Document],
    *,
    filename: str,
    request_headers: Mapping[str, str],
) -> StreamingResponse:
    """``keys``: package id → package key for every object of the archive."""
    plan = plan_zip(pdi_layout(patients, documents, readme_text=README_TEXT))
    selected = _select_range(request_headers, plan.total_size, plan.etag)
    start, end = selected or (0, plan.total_size)

    def open_object(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
        obj = objects[object_id]
        return plaintext(store, keys[obj.package_id], obj, offset, offset + length)

    body = await _prefetched(
        stream_zip(plan, open_object, start, end),
        what="archive member failed authentication",
        context={"archive": filename},
    )
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": plan.etag,
        "Content-Length": str(end - start),
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "private, no-store",
    }
    status = 200
    if selected is not None:
        status = 206
        headers["Content-Range"] = content_range(start, end, plan.total_size)
    return StreamingResponse(
        body, status_code=status, media_type="application/zip", headers=headers
    )
