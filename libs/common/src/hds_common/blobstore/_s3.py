"""Blob store on S3 or an S3-compatible server (MinIO, Ceph RGW, moto), via aioboto3."""

from __future__ import annotations

import asyncio
import builtins  # `list` is shadowed by the BlobStore.list method in class scope
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import Any, Literal

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError

from hds_common.blobstore._base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobStore,
    check_range,
    validate_key,
    validate_prefix,
)
from hds_common.blobstore._errors import BlobNotFound, BlobStoreError

__all__ = ["DEFAULT_PART_SIZE", "MIN_PART_SIZE", "S3BlobStore"]

_log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024  # S3 rejects smaller parts (except the last one)
DEFAULT_PART_SIZE = 8 * 1024 * 1024
_MAX_PARTS = 10_000  # S3 limit: with 8 MiB parts objects up to ~78 GiB

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_NO_BUCKET_CODES = frozenset({"NoSuchBucket", "NotFound", "404"})
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (BotoCoreError, OSError, TimeoutError)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3BlobStore(BlobStore):
    """Stores each blob as the object ``<prefix><key>`` in ``bucket``.

    One aioboto3 session and one client (with its connection pool) are created by
    :meth:`open` and shared by all operations; construct it in the application
    lifespan (``await S3BlobStore.create(...)`` or ``async with store:``).

    ``put`` buffers up to ``multipart_threshold`` bytes: a smaller blob is sent with
    a single PutObject, a larger one as a multipart upload of ``part_size`` parts,
    uploading one part while the next is being filled (so memory stays around two
    parts) and aborting the upload on any error or cancellation. S3 publishes an
    object only when PutObject / CompleteMultipartUpload succeeds, which is what
    makes ``put`` atomic.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        prefix: str = "",
        part_size: int = DEFAULT_PART_SIZE,
        multipart_threshold: int = DEFAULT_PART_SIZE,
        addressing_style: Literal["auto", "path", "virtual"] | None = None,
        max_attempts: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_pool_connections: int = 32,
        ping_timeout: float = 5.0,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must not be empty")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be >= {MIN_PART_SIZE} bytes (S3 minimum)")
        if multipart_threshold < 1:
            raise ValueError("multipart_threshold must be positive")
        if (access_key_id is None) != (secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        prefix = prefix.strip("/")
        self._prefix = validate_key(prefix) + "/" if prefix else ""
        self._bucket = bucket
        self._endpoint_url = endpoint_url
        self._region = region
        self._credentials = (access_key_id, secret_access_key, session_token)
        self._part_size = part_size
        self._threshold = multipart_threshold
        self._ping_timeout = ping_timeout
        self._config = AioConfig(
            # Custom endpoints (MinIO, moto, an IP address) rarely have the wildcard
            # DNS that virtual-hosted bucket addressing needs.
            s3={"addressing_style": addressing_style or ("path" if endpoint_url else "auto")},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_pool_connections,
            # botocore >= 1.36 adds CRC checksums to every upload by default, which
            # several S3-compatible servers reject; integrity in transit is TLS's job.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        # Aborts shielded from a second cancellation keep running in the
        # background; hold strong references and wait for them in close().
        self._background: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return (
            f"S3BlobStore(bucket={self._bucket!r}, prefix={self._prefix!r}, "
            f"endpoint_url={self._endpoint_url!r})"
        )

    @classmethod
    async def create(cls, bucket: str, **kwargs: Any) -> S3BlobStore:
        """Construct and :meth:`open` a store (same arguments as the constructor)."""
        store = cls(bucket, **kwargs)
        await store.open()
        return store

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        """Key prefix inside the bucket (``""`` or ending with ``/``)."""
        return self._prefix

    @property
    def endpoint_url(self) -> str | None:
        return self._endpoint_url

    @property
    def part_size(self) -> int:
        return self._part_size

    @property
    def multipart_threshold(self) -> int:
        return self._threshold

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        access_key_id, secret_access_key, session_token = self._credentials
        # None credentials let botocore's default chain resolve them (AWS_* env
        # vars, shared config/profile, container or instance metadata).
        session = aioboto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=self._region,
        )
        stack = contextlib.AsyncExitStack()
        try:
            self._client = await stack.enter_async_context(
                session.client("s3", endpoint_url=self._endpoint_url, config=self._config)
            )
        except BaseException:
            await stack.aclose()
            raise
        self._exit_stack = stack

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=10.0)
        stack, self._exit_stack, self._client = self._exit_stack, None, None
        if stack is not None:
            await stack.aclose()

    def _require_client(self) -> Any:
        if self._client is None:
            raise BlobStoreError(f"{self!r} is not open; call `await store.open()` first")
        return self._client

    def _object_key(self, key: str) -> str:
        return self._prefix + validate_key(key)

    def _wrap(self, exc: BaseException, action: str, key: str | None = None) -> BlobStoreError:
        where = f"s3://{self._bucket}/{self._prefix}{key or ''}"
        return BlobStoreError(f"S3 {action} failed for {where}: {exc}")

    # -- put ---------------------------------------------------------------------

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        object_key = self._object_key(key)
        client = self._require_client()
        source = aiter(chunks)
        buf = bytearray()
        async for chunk in source:
            buf += chunk
            if len(buf) >= self._threshold:
                return await self._put_multipart(client, key, object_key, buf, source)
        size = len(buf)
        try:
            await client.put_object(
                Bucket=self._bucket,
                Key=object_key,
                Body=bytes(buf),
                ContentType="application/octet-stream",
            )
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            raise self._wrap(exc, "PutObject", key) from exc
        return size

    async def _put_multipart(
        self,
        client: Any,
        key: str,
        object_key: str,
        buf: bytearray,
        source: AsyncIterator[bytes],
    ) -> int:
        # If cancelled while this request is in flight the upload may exist without
        # us knowing its id; only a bucket lifecycle rule (AbortIncompleteMultipartUpload)
        # can reclaim it - recommended for production buckets anyway.
        try:
            created = await client.create_multipart_upload(
                Bucket=self._bucket, Key=object_key, ContentType="application/octet-stream"
            )
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            raise self._wrap(exc, "CreateMultipartUpload", key) from exc
        upload_id: str = created["UploadId"]
        total = len(buf)
        parts: builtins.list[dict[str, Any]] = []
        inflight: asyncio.Task[None] | None = None
        part_number = 0

        async def upload(number: int, data: bytes) -> None:
            try:
                resp = await client.upload_part(
                    Bucket=self._bucket,
                    Key=object_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                )
            except (ClientError, *_TRANSPORT_ERRORS) as exc:
                raise self._wrap(exc, f"UploadPart {number}", key) from exc
            parts.append({"PartNumber": number, "ETag": resp["ETag"]})

        async def submit(data: bytes) -> None:
            # Wait for the previous part first: at most one part is in flight while
            # the next one is filled, which bounds memory to ~2 parts.
            nonlocal inflight, part_number
            if inflight is not None:
                await inflight
            part_number += 1
            if part_number > _MAX_PARTS:
                raise BlobStoreError(
                    f"blob {key!r} exceeds {_MAX_PARTS} parts of {self._part_size} bytes"
                )
            inflight = asyncio.create_task(upload(part_number, data))

        try:
            while True:
                while len(buf) >= self._part_size:
                    with memoryview(buf) as view:
                        part = bytes(view[: self._part_size])
                    del buf[: self._part_size]
                    await submit(part)
                    del part
                chunk = await anext(source, None)
                if chunk is None:
                    break
                buf += chunk
                total += len(chunk)
            if buf or part_number == 0:
                # The last part may be smaller than the S3 minimum.
                last = bytes(buf)
                buf.clear()
                await submit(last)
            if inflight is not None:
                await inflight
            parts.sort(key=lambda p: int(p["PartNumber"]))
            try:
                await client.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=object_key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
            except (ClientError, *_TRANSPORT_ERRORS) as exc:
                raise self._wrap(exc, "CompleteMultipartUpload", key) from exc
            return total
        except BaseException:
            # Source error, S3 error or cancellation: the object never becomes
            # visible, but the uploaded parts would linger (and be billed) until
            # aborted.
            await self._abort(client, object_key, upload_id, inflight)
            raise

    async def _abort(
        self,
        client: Any,
        object_key: str,
        upload_id: str,
        inflight: asyncio.Task[None] | None,
    ) -> None:
        async def abort() -> None:
            if inflight is not None:
                # A part still uploading would race the abort (and could recreate
                # the upload's storage on some servers): stop it first.
                inflight.cancel()
                await asyncio.wait([inflight])
                if not inflight.cancelled():
                    inflight.exception()  # retrieved; the caller re-raises the first error
            try:
                await client.abort_multipart_upload(
                    Bucket=self._bucket, Key=object_key, UploadId=upload_id
                )
            except (ClientError, *_TRANSPORT_ERRORS) as exc:
                # NoSuchUpload: it completed or was already aborted. Otherwise the
                # bucket needs an AbortIncompleteMultipartUpload lifecycle rule.
                _log.warning(
                    "blobstore: could not abort multipart upload %s of s3://%s/%s: %s",
                    upload_id,
                    self._bucket,
                    object_key,
                    exc,
                )

        # One task for the whole cleanup, shielded: a second cancellation of the
        # caller must not interrupt it halfway and leave the upload behind.
        task = asyncio.create_task(abort())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        await asyncio.shield(task)

    # -- get / stat / delete / list -----------------------------------------------

    async def get(
        self, key: str, start: int = 0, end: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        object_key = self._object_key(key)
        check_range(start, end)
        client = self._require_client()
        if end == start:
            # Nothing to read, but a missing key must still be reported.
            await self.stat(key)
            return
        request: dict[str, Any] = {"Bucket": self._bucket, "Key": object_key}
        if start > 0 or end is not None:
            # HTTP ranges are inclusive; S3 clamps an end past the object size.
            request["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            resp = await client.get_object(**request)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _NOT_FOUND_CODES:
                raise BlobNotFound(key) from exc
            if code == "InvalidRange":
                return  # start at/after the end of the object: clamped to empty
            raise self._wrap(exc, "GetObject", key) from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._wrap(exc, "GetObject", key) from exc
        body = resp["Body"]
        exhausted = False
        try:
            # The HTTP layer hands out small pieces (~64 KiB); regroup them into
            # CHUNK_SIZE chunks so consumers get the same granularity as from disk.
            pending: builtins.list[bytes] = []
            pending_len = 0
            while True:
                try:
                    piece = await body.read(CHUNK_SIZE - pending_len)
                except _TRANSPORT_ERRORS as exc:
                    raise self._wrap(exc, "GetObject (body)", key) from exc
                if not piece:
                    break
                pending.append(piece)
                pending_len += len(piece)
                if pending_len >= CHUNK_SIZE:
                    chunk = b"".join(pending)
                    pending, pending_len = [], 0
                    yield chunk
            exhausted = True
            if pending:
                yield b"".join(pending)
        finally:
            if not exhausted:
                # Drop the connection instead of draining an unread body into the pool.
                body.close()

    async def stat(self, key: str) -> BlobInfo:
        object_key = self._object_key(key)
        client = self._require_client()
        try:
            resp = await client.head_object(Bucket=self._bucket, Key=object_key)
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise BlobNotFound(key) from exc
            raise self._wrap(exc, "HeadObject", key) from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._wrap(exc, "HeadObject", key) from exc
        return BlobInfo(key, int(resp["ContentLength"]))

    async def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        client = self._require_client()
        try:
            # DeleteObject succeeds for missing keys: idempotent by protocol.
            await client.delete_object(Bucket=self._bucket, Key=object_key)
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            raise self._wrap(exc, "DeleteObject", key) from exc

    async def list(self, prefix: str = "") -> AsyncGenerator[BlobInfo, None]:
        validate_prefix(prefix)
        client = self._require_client()
        paginator = client.get_paginator("list_objects_v2")
        strip = len(self._prefix)
        # aiobotocore's page iterator is an async generator (behind __aiter__).
        pages = aiter(paginator.paginate(Bucket=self._bucket, Prefix=self._prefix + prefix))
        try:
            # S3 returns keys in UTF-8 binary order, which equals str order for our
            # ASCII-only keys, so results stream sorted without buffering.
            while True:
                try:
                    page = await anext(pages, None)
                except (ClientError, *_TRANSPORT_ERRORS) as exc:
                    raise self._wrap(exc, "ListObjectsV2", prefix) from exc
                if page is None:
                    break
                for obj in page.get("Contents", ()):
                    key = str(obj["Key"])[strip:]
                    try:
                        validate_key(key)
                    except ValueError:
                        continue  # written by another tool; not addressable through get()
                    yield BlobInfo(key, int(obj["Size"]))
        finally:
            # Close the page generator now rather than whenever it is collected,
            # when a consumer stops early.
            aclose = getattr(pages, "aclose", None)
            if aclose is not None:
                await aclose()

    # -- health / admin ------------------------------------------------------------

    async def ping(self) -> None:
        client = self._require_client()
        try:
            async with asyncio.timeout(self._ping_timeout):
                await client.head_bucket(Bucket=self._bucket)
        except (ClientError, *_TRANSPORT_ERRORS) as exc:
            raise self._wrap(exc, "HeadBucket") from exc

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (dev/test convenience)."""
        client = self._require_client()
        try:
            await client.head_bucket(Bucket=self._bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _NO_BUCKET_CODES:
                raise self._wrap(exc, "HeadBucket") from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._wrap(exc, "HeadBucket") from exc
        request: dict[str, Any] = {"Bucket": self._bucket}
        if self._region != "us-east-1":
            # us-east-1 is the one region that rejects an explicit LocationConstraint.
            request["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            await client.create_bucket(**request)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":  # lost a creation race
                raise self._wrap(exc, "CreateBucket") from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._wrap(exc, "CreateBucket") from exc
