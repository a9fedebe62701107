"""Downloads: decrypted objects and IHE PDI archives, with Range / If-Range.

Integrity: the first plaintext chunk is produced (its segment authenticated) before the
response headers go out, so a tampered small object is answered with a clean 500
``integrity-error`` problem and a log line. A failure later in a large stream cannot
change the status any more: the stream stops and the connection is aborted (the client
sees fewer bytes than ``Content-Length``); unauthenticated bytes are never sent.

Archives are planned from the index (metadata decrypted, DICOMDIR and ZIP layout built)
in a worker thread, and the plan is kept in a small cache (:mod:`hds_storage.downloads.plans`) so
that a resumed download (Range / If-Range) or a repeated one starts streaming at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import structlog
from fastapi.responses import StreamingResponse

from hds_common.blobstore import BlobNotFound, BlobStore, BlobStoreError
from hds_common.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    IntegrityError,
    RangeDecryptor,
    decrypt_bytes,
    segment_count,
    segment_span,
)
from hds_common.pdi import (
    RangeNotSatisfiable,
    ZipPlan,
    ZipStreamError,
    content_range,
    parse_range_header,
    pdi_layout,
    plan_zip,
    stream_zip,
)
from hds_storage.downloads.index import ArchiveContent
from hds_storage.downloads.plans import ArchivePlans
from hds_storage.errors import (
    BlobStoreUnavailable,
    RangeNotSatisfiableProblem,
    integrity_failure,
)
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


# Ciphertext is read in windows of whole segments up to this size: a typical DICOM object
# (a few MiB) is a single read - one worker-thread hop for a file, one GET for S3 - and
# every segment is decrypted straight from the window (no chunk boundaries to bridge).
_WINDOW = 4 * 1024 * 1024


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

    Reads only the segments covering the range (plus the 16-byte header), window by
    window; the next window is read while the current one is decrypted and sent."""
    size = obj.size
    segment = obj.segment_size
    total_segments = segment_count(size, segment)
    pending: asyncio.Task[bytes] | None = None
    try:
        if size == 0:
            # The single empty final segment still proves the object is what we stored.
            decrypt_bytes(package_key, obj.id, await store.get_bytes(obj.blob_key))
            return
        first, _, c_start, c_end = segment_span(start, end, size, segment)
        skip = start - first * segment
        stride = segment + TAG_SIZE
        step = max(1, _WINDOW // stride) * stride
        # From the start of the object, the header comes with the first window.
        windows = [[lo, min(lo + step, c_end)] for lo in range(c_start, c_end, step)]
        if first == 0:
            windows[0][0] = 0
            header = b""
        else:
            header = await store.get_bytes(obj.blob_key, 0, HEADER_SIZE)

        def read(index: int) -> asyncio.Task[bytes]:
            lo, hi = windows[index]
            return asyncio.ensure_future(store.get_bytes(obj.blob_key, lo, hi))

        decryptor: RangeDecryptor | None = None
        for index, (lo, hi) in enumerate(windows):
            if pending is None:
                window = await store.get_bytes(obj.blob_key, lo, hi)
            else:
                window = await pending
                pending = None
            if index + 1 < len(windows):
                pending = read(index + 1)
            body = memoryview(window)
            if decryptor is None:
                if first == 0:
                    header = window[:HEADER_SIZE]
                    body = body[HEADER_SIZE:]
                if len(header) < HEADER_SIZE:
                    raise IntegrityError("stored object shorter than its header")
                decryptor = RangeDecryptor(
                    package_key, obj.id, header, first, total_segments, skip, end - start
                )
            for offset in range(0, len(body), stride):
                for piece in decryptor.feed(body[offset : offset + stride]):
                    if piece:
                        yield piece
        if decryptor is None:
            raise IntegrityError("stored object shorter than its header")
        last = decryptor.finish()
        if last:
            yield last
    except BlobNotFound:
        raise IntegrityError("stored object is missing") from None
    finally:
        if pending is not None:
            # The client went away (or the object failed): drop the read ahead, and wait
            # for it, so that no read outlives the response.
            pending.cancel()
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # a failed read nobody needs any more is no error


def _select_range(headers: Mapping[str, str], total: int, etag: str) -> tuple[int, int] | None:
    range_header = headers.get("range")
    if_range = headers.get("if-range")
    if range_header is not None and if_range is not None and if_range.strip() != etag:
        range_header = None  # the client's copy is stale: send the whole representation
    try:
        return parse_range_header(range_header, total)
    except RangeNotSatisfiable:
        raise RangeNotSatisfiableProblem(total) from None
    except ValueError:
        # A position Python will not read (over 4300 digits): like any unreadable
        # Range, ignored (RFC 9110 14.2), so the whole body is sent.
        return None


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
        raise BlobStoreUnavailable("the blob store is unavailable") from exc

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


def _plan(content: ArchiveContent) -> ZipPlan:
    patients, documents = content.build()
    return plan_zip(pdi_layout(patients, documents, readme_text=README_TEXT))


async def archive_response(
    store: BlobStore,
    keys: Mapping[str, bytes],
    content: ArchiveContent,
    plans: ArchivePlans,
    *,
    filename: str,
    request_headers: Mapping[str, str],
) -> StreamingResponse:
    """``keys``: package id → package key for every object of the archive."""
    plan = plans.get(content.fingerprint)
    if plan is None:
        # Decrypting thousands of metadata rows and encoding the DICOMDIR is CPU work:
        # off the event loop, so that other downloads keep streaming meanwhile.
        plan = await asyncio.to_thread(_plan, content)
        plans.put(content.fingerprint, plan)
    selected = _select_range(request_headers, plan.total_size, plan.etag)
    start, end = selected or (0, plan.total_size)
    objects = content.objects

    def open_object(object_id: str, offset: int, length: int) -> AsyncIterator[bytes]:
        obj = objects[object_id]
        return plaintext(store, keys[obj.package_id], obj, offset, offset + length)

    # No CRC-32 pass over the members: every byte comes out of authenticated decryption
    # of exactly the object the plan names (the object id is bound into its key and
    # AAD, the final-segment flag and the exact plaintext length end it), so it is the
    # plaintext ingest computed the index's CRC-32 from, and stream_zip still checks
    # each member's length. The CRC-32s in the archive are checked by every unzip.
    body = await _prefetched(
        stream_zip(plan, open_object, start, end, verify_crc32=False),
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
