"""Stopping the server processes that tests and benchmarks start."""

from __future__ import annotations

import subprocess
from typing import Any

__all__ = ["stop_process"]


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM (a graceful shutdown), SIGKILL if ``process`` has not exited after
    ``timeout`` seconds; returns once it is gone. A process that has exited already is
    only reaped."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
