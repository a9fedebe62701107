"""The storage service as a real process (``python -m hds_storage serve``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from hds_common.testing.ports import free_port
from tests.storage.support_identity import INTERNAL_SECRET, ISSUER


class StorageProcess:
    """``python -m hds_storage serve`` with settings from the environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["HDS_STORAGE_PORT"])
        self.log_path = log_path
        self.proc: Any = None
        self.base_url = f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60.0) -> None:
        import asyncio
        import os
        import subprocess
        import sys

        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hds_storage", "serve"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"storage exited:\n{self.log_path.read_text()[-4000:]}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"storage not ready:\n{self.log_path.read_text()[-4000:]}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing — a crash."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def pid(self) -> int:
        return int(self.proc.pid)


def process_env(
    *,
    database_url: str,
    blob_url: str,
    auth_url: str,
    key_file: Path,
    **extra: str,
) -> dict[str, str]:
    return {
        "HDS_STORAGE_PORT": str(free_port()),
        "HDS_STORAGE_DATABASE_URL": database_url,
        "HDS_STORAGE_BLOB_URL": blob_url,
        "HDS_STORAGE_GRANT_PRIVATE_KEY_FILE": str(key_file),
        "HDS_AUTH_URL": auth_url,
        "HDS_INTERNAL_SECRET": INTERNAL_SECRET,
        "HDS_JWT_ISSUER": ISSUER,
        "HDS_ENVIRONMENT": "test",
        "HDS_LOG_LEVEL": "WARNING",
        **extra,
    }
