"""Build a blob store from a URL (the format is documented in the package docstring)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from hds_common.blobstore._base import BlobStore
from hds_common.blobstore._filesystem import FilesystemBlobStore

if TYPE_CHECKING:
    from hds_common.blobstore._s3 import S3BlobStore

__all__ = ["blobstore_from_url", "open_blobstore"]

_MIB = 1024 * 1024
# Lenient superset of S3 bucket naming rules (also accepts MinIO/Ceph names).
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

_S3_PARAMS = frozenset(
    {
        "endpoint",
        "region",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "part_size_mib",
        "multipart_threshold_mib",
        "addressing_style",
        "max_attempts",
    }
)


def _single_values(query: str) -> dict[str, str]:
    parsed = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(parsed) - _S3_PARAMS)
    if unknown:
        # Fail loudly on typos: a misspelt "endpoint" would silently target AWS.
        raise ValueError(f"unknown blob store URL parameter(s): {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, items in parsed.items():
        if len(items) != 1:
            raise ValueError(f"blob store URL parameter {name!r} given more than once")
        values[name] = items[0]
    return values


def _positive_int(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"blob store URL parameter {name!r} must be an integer") from None
    if value <= 0:
        raise ValueError(f"blob store URL parameter {name!r} must be positive")
    return value


def _s3_from_url(url: str) -> S3BlobStore:
    # Imported here: only processes configured with an s3:// URL pay for aioboto3.
    from hds_common.blobstore._s3 import S3BlobStore

    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValueError("put S3 credentials in query parameters or AWS_* env vars, not userinfo")
    bucket = parts.hostname or ""
    if not _BUCKET_RE.fullmatch(bucket):
        raise ValueError(f"invalid S3 bucket name in blob store URL: {bucket!r}")
    params = _single_values(parts.query)
    kwargs: dict[str, Any] = {
        "prefix": unquote(parts.path).strip("/"),
        "endpoint_url": params.get("endpoint") or None,
        # Same precedence as the AWS CLI: explicit, then AWS_REGION, AWS_DEFAULT_REGION.
        "region": params.get("region")
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
    }
    # Missing credentials stay None: botocore then reads AWS_ACCESS_KEY_ID /
    # AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, profiles or instance metadata.
    for name in ("access_key_id", "secret_access_key", "session_token"):
        if params.get(name):
            kwargs[name] = params[name]
    part_mib = _positive_int(params, "part_size_mib")
    if part_mib is not None:
        kwargs["part_size"] = part_mib * _MIB
    threshold_mib = _positive_int(params, "multipart_threshold_mib")
    if threshold_mib is not None:
        kwargs["multipart_threshold"] = threshold_mib * _MIB
    attempts = _positive_int(params, "max_attempts")
    if attempts is not None:
        kwargs["max_attempts"] = attempts
    style = params.get("addressing_style")
    if style is not None:
        if style not in ("auto", "path", "virtual"):
            raise ValueError("addressing_style must be one of auto, path, virtual")
        kwargs["addressing_style"] = style
    return S3BlobStore(bucket, **kwargs)


def _filesystem_from_url(url: str) -> FilesystemBlobStore:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URLs must be local (file:///abs/path), got host {parts.netloc!r}")
    if parts.query or parts.fragment:
        raise ValueError("file blob store URLs take no query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError("file blob store URLs need an absolute path: file:///abs/path")
    return FilesystemBlobStore(Path(path))


def blobstore_from_url(url: str) -> BlobStore:
    """Construct (without opening) the store described by ``url``.

    Performs no I/O: call ``await store.open()`` (or use ``async with``) before use,
    typically in the application lifespan. See the package docstring for the format.
    """
    url = url.strip()
    if not url:
        raise ValueError("empty blob store URL")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "s3":
        return _s3_from_url(url)
    if scheme == "file":
        return _filesystem_from_url(url)
    if scheme == "" or "://" not in url:
        # A plain path; relative paths are anchored now so that a later chdir
        # cannot move the store.
        return FilesystemBlobStore(Path(url).absolute())
    raise ValueError(f"unsupported blob store URL scheme {scheme!r} (use file:// or s3://)")


async def open_blobstore(url: str) -> BlobStore:
    """Construct the store described by ``url`` and open it."""
    store = blobstore_from_url(url)
    await store.open()
    return store
