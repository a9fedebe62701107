"""End-to-end fixtures: the five services as real processes, wired like production
(PostgreSQL, the S3 protocol, a real SMTP server), reached only through the gateway."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hds_common.testing.ports import free_port_block
from hds_common.testing.postgres import temporary_database
from hds_common.testing.processes import stop_process
from hds_common.testing.s3server import MotoS3Server
from hds_common.testing.smtp import SmtpTestServer

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "codes", "storage", "dlx", "gateway")


def _load_local_runner() -> Any:
    spec = importlib.util.spec_from_file_location("hds_local_run", REPO / "deploy/local/run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


local_runner = _load_local_runner()


def wait_until_ready(
    url: str, processes: dict[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"suite not ready at {url} after {timeout} s")


@dataclass
class RunningSuite:
    gateway_url: str
    env: dict[str, str]
    var: Path
    smtp: SmtpTestServer
    s3: MotoS3Server
    bucket: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def demo_credentials(self) -> dict[str, str]:
        return dict(json.loads((self.var / "demo-credentials.json").read_text()))

    def start(self, name: str) -> None:
        log = (self.var / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"hds_{name}", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, name: str) -> None:
        stop_process(self.processes.pop(name))

    def log_of(self, name: str) -> str:
        return (self.var / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3Server]:
    with MotoS3Server() as server:
        yield server


@asynccontextmanager
async def start_suite(
    var: Path,
    smtp_server: SmtpTestServer,
    s3_server: MotoS3Server,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[RunningSuite]:
    """The five services on PostgreSQL + S3 + SMTP, with ``extra_env`` on top of the
    production-like settings; stopped and their databases dropped afterwards."""
    base_port = free_port_block()
    async with (
        temporary_database("hds_e2e_auth") as auth_db,
        temporary_database("hds_e2e_codes") as codes_db,
        temporary_database("hds_e2e_storage") as storage_db,
    ):
        bucket = f"hds-e2e-{base_port}"
        env = {
            **os.environ,
            **local_runner.suite_environment(var, base_port, "127.0.0.1"),
            "HDS_ENVIRONMENT": "test",
            "HDS_AUTH_DATABASE_URL": auth_db,
            "HDS_CODES_DATABASE_URL": codes_db,
            "HDS_STORAGE_DATABASE_URL": storage_db,
            "HDS_STORAGE_BLOB_URL": s3_server.blobstore_url(bucket, "objects"),
            "HDS_AUTH_SMTP_HOST": smtp_server.host,
            "HDS_AUTH_SMTP_PORT": str(smtp_server.port),
            # Every test of a run registers and logs in from 127.0.0.1, more often than the
            # per-address limit of credential requests allows (tested in tests/gateway).
            "HDS_GATEWAY_RATE_LIMIT_AUTH_PER_ADDRESS": "100000",
            **(extra_env or {}),
        }
        store = s3_server.blobstore(bucket)
        async with store:
            await store.ensure_bucket()
        for name in local_runner.MIGRATED:
            subprocess.run([sys.executable, "-m", f"hds_{name}", "migrate"], env=env, check=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "hds_auth",
                "ensure-demo",
                "--output",
                str(var / "demo-credentials.json"),
            ],
            env=env,
            check=True,
        )
        running = RunningSuite(
            gateway_url=env["HDS_PUBLIC_BASE_URL"],
            env=env,
            var=var,
            smtp=smtp_server,
            s3=s3_server,
            bucket=bucket,
        )
        try:
            for name in SERVICES:
                running.start(name)
            wait_until_ready(f"{running.gateway_url}/readyz", running.processes, timeout=180)
            yield running
        finally:
            for name in list(running.processes):
                running.stop(name)


@pytest.fixture(scope="session")
async def suite(
    tmp_path_factory: pytest.TempPathFactory,
    smtp_server: SmtpTestServer,
    s3_server: MotoS3Server,
) -> AsyncIterator[RunningSuite]:
    async with start_suite(tmp_path_factory.mktemp("suite-var"), smtp_server, s3_server) as running:
        yield running


def publish(suite: RunningSuite, folder: Path, birth_date: str) -> dict[str, Any]:
    """``hds publish`` of ``folder`` as the demo institution; its ``--json`` answer."""
    credentials = suite.demo_credentials
    # fmt: off
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "hds"), "publish", str(folder),
            "--birth-date", birth_date, "--gateway", suite.gateway_url,
            "--email", credentials["email"], "--password", credentials["password"], "--json",
        ],
        capture_output=True, text=True, env=suite.env, check=False, timeout=120,
    )
    # fmt: on
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer
