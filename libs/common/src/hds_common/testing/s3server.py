"""Run moto's standalone S3 server as a subprocess: a real S3 protocol endpoint on
127.0.0.1 for tests, ``make`` targets, CI and benchmarks (no in-process mocks).

    with MotoS3Server() as s3:
        store = s3.blobstore("my-bucket")            # S3BlobStore, not yet opened
        url = s3.blobstore_url("my-bucket", "prefix")  # for blobstore_from_url()

The server keeps everything in memory and accepts any credentials; the dummy ones
below are handed to clients explicitly so that ``os.environ`` is never modified.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self
from urllib.parse import quote, urlencode

from hds_common.testing.ports import free_port
from hds_common.testing.processes import stop_process

if TYPE_CHECKING:  # importing aioboto3 is slow; only blobstore() needs it
    from hds_common.blobstore import S3BlobStore

__all__ = ["MotoS3Server"]


class MotoS3Server:
    """Start/stop ``python -m moto.server`` on a free port of ``host``."""

    access_key_id = "testing"
    secret_access_key = "testing"
    region = "us-east-1"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        startup_timeout: float = 30.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._startup_timeout = startup_timeout
        self._log_path = Path(log_path) if log_path is not None else None
        self._log_file: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("MotoS3Server already started")
        attempts = 1 if self._requested_port is not None else 3
        last_error: RuntimeError | None = None
        for _ in range(attempts):
            try:
                self._start_once(self._requested_port or free_port(self._host))
            except RuntimeError as exc:
                last_error = exc
                continue
            # Safety net for callers that never reach stop() (a crashed test run):
            # an orphaned server would keep the port and memory.
            atexit.register(self.stop)
            return
        assert last_error is not None
        raise last_error

    def _start_once(self, port: int) -> None:
        if self._log_path is not None:
            log_file: IO[bytes] = open(self._log_path, "a+b")
        else:
            log_file = tempfile.TemporaryFile()
        # Output goes to a file, not a pipe: nobody reads a pipe during the run and
        # a full pipe buffer would block the server.
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self._host, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        self._proc, self._port, self._log_file = proc, port, log_file
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if proc.poll() is not None:
                log = self._read_log()
                self._cleanup()
                raise RuntimeError(
                    f"moto server exited with status {proc.returncode} during startup:\n{log}"
                )
            if self._answers():
                return
            if time.monotonic() > deadline:
                log = self._read_log()
                self.stop()
                raise RuntimeError(
                    f"moto server did not answer on {self.endpoint_url} within "
                    f"{self._startup_timeout:.0f}s:\n{log}"
                )
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1.0):
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP response means the server is serving
        except (urllib.error.URLError, OSError):
            return False

    def _read_log(self) -> str:
        if self._log_file is None:
            return ""
        with contextlib.suppress(OSError):
            self._log_file.flush()
            self._log_file.seek(0)
            return self._log_file.read()[-4000:].decode("utf-8", "replace")
        return ""

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s). Idempotent."""
        proc = self._proc
        if proc is not None:
            stop_process(proc, timeout=5.0)
        self._cleanup()

    def _cleanup(self) -> None:
        self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    # -- connection details ----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MotoS3Server not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``aioboto3.Session().client("s3", **kwargs)``."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
        }

    def blobstore_url(self, bucket: str, prefix: str = "", **params: str) -> str:
        """An ``s3://`` URL for ``blobstore_from_url`` pointing at this server."""
        query = {
            "endpoint": self.endpoint_url,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            **params,
        }
        path = f"/{quote(prefix.strip('/'))}" if prefix.strip("/") else ""
        return f"s3://{bucket}{path}?{urlencode(query)}"

    def blobstore(self, bucket: str, prefix: str = "", **kwargs: Any) -> S3BlobStore:
        """An (unopened) ``S3BlobStore`` on this server; ``kwargs`` go to its constructor."""
        from hds_common.blobstore import S3BlobStore

        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "prefix": prefix,
            **kwargs,
        }
        return S3BlobStore(bucket, **options)

    def reset(self) -> None:
        """Drop all buckets and objects (moto's reset API)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10.0):
            pass
