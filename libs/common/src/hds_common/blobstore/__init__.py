"""Streaming, atomic blob storage for large binary objects (DICOM studies, archives).

Two backends implement the same :class:`BlobStore` contract:

* :class:`FilesystemBlobStore` - files under a root directory (temp file + fsync +
  atomic rename);
* :class:`S3BlobStore` - S3 or an S3-compatible server (MinIO, Ceph, moto), with
  multipart uploads above a size threshold.

Open one store per process in the application lifespan and share it::

    store = blobstore_from_url(settings.blob_store_url)
    await store.open()          # or: async with store: ...
    try:
        await store.put("studies/1.2.3/archive.zip", chunks)   # AsyncIterable[bytes]
        async for chunk in store.get("studies/1.2.3/archive.zip", 0, 1024):
            ...
    finally:
        await store.close()

URL format accepted by :func:`blobstore_from_url` / :func:`open_blobstore`
--------------------------------------------------------------------------

``file:///abs/path`` or a plain path (``/var/lib/hds/blobs``, ``./blobs``)
    Filesystem store rooted at that directory (created on ``open()``). Relative
    plain paths are resolved against the current directory at construction time.
    ``file://localhost/abs/path`` is accepted too; no query parameters.

``s3://<bucket>[/<key-prefix>][?<params>]``
    S3 store; every blob key is stored as ``<key-prefix>/<key>``. Parameters
    (all optional, URL-encoded):

    ``endpoint``
        Endpoint URL of an S3-compatible server, e.g. ``http://127.0.0.1:9000``
        (path-style addressing is then used). Default: AWS.
    ``region``
        Default ``$AWS_REGION``, then ``$AWS_DEFAULT_REGION``, then ``us-east-1``.
    ``access_key_id``, ``secret_access_key``, ``session_token``
        Default: botocore's credential chain - ``AWS_ACCESS_KEY_ID`` /
        ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, profiles, instance role.
        Prefer the environment in production: URLs end up in logs.
    ``part_size_mib`` (default 8, minimum 5), ``multipart_threshold_mib`` (default 8)
        Multipart upload tuning.
    ``addressing_style``
        ``auto`` | ``path`` | ``virtual``.
    ``max_attempts``
        Total attempts per request with botocore's standard retry mode (default 3).

    Unknown parameters are rejected. Example:
    ``s3://hds-blobs/prod?endpoint=http%3A//127.0.0.1%3A9000&region=eu-central-1``
    (a plain ``endpoint=http://127.0.0.1:9000`` also parses).

Keys are relative paths of ``[A-Za-z0-9._-]`` segments joined by ``/``; see
:func:`validate_key`.
"""

from typing import TYPE_CHECKING, Any

from hds_common.blobstore._base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobStore,
    validate_key,
    validate_prefix,
)
from hds_common.blobstore._errors import BlobNotFound, BlobStoreError
from hds_common.blobstore._factory import blobstore_from_url, open_blobstore
from hds_common.blobstore._filesystem import FilesystemBlobStore

if TYPE_CHECKING:
    from hds_common.blobstore._s3 import S3BlobStore

__all__ = [
    "CHUNK_SIZE",
    "BlobInfo",
    "BlobNotFound",
    "BlobStore",
    "BlobStoreError",
    "FilesystemBlobStore",
    "S3BlobStore",
    "blobstore_from_url",
    "open_blobstore",
    "validate_key",
    "validate_prefix",
]


def __getattr__(name: str) -> Any:
    # aioboto3/botocore take tens of MB and a noticeable start-up time: load them only
    # when the S3 backend is actually used (an s3:// URL or an explicit import).
    if name == "S3BlobStore":
        from hds_common.blobstore._s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
