"""End-to-end fixtures: the five services as real processes, wired like production
(PostgreSQL, the S3 protocol, a real SMTP server), reached only through the gateway."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hds_client.api import SuiteClient, SyncSuiteClient
from hds_client.files import find_uploads
from hds_client.publish import PublishResult, parse_birth_date
from hds_client.publish import publish as publish_uploads
from hds_common.testing.ports import free_port_block
from hds_common.testing.postgres import temporary_database
from hds_common.testing.processes import stop_process
from hds_common.testing.s3server import MotoS3Server
from hds_common.testing.smtp import SmtpTestServer

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("auth", "codes", "storage", "dlx", "gateway")
INVITATION_LINK = re.compile(r"https?://\S+/auth/v1/invitation\?token=([A-Za-z0-9_-]+)")


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
    # The institution the suite onboarded by invitation: email, password, recovery code.
    institution: dict[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m hds_<service> ...`` as the operator runs it; what it prints is kept
        in ``var/commands.log`` with the services' logs."""
        result = subprocess.run(
            [sys.executable, "-m", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        with (self.var / "commands.log").open("a", encoding="utf-8") as log:
            log.write(f"$ python -m {' '.join(args)}\n{result.stdout}{result.stderr}")
        return result

    def invitation_token(self, email: str) -> str:
        """The link of the newest invitation mail to ``email``, as its holder reads it."""
        for mail in reversed(self.smtp.messages_to(email)):
            body = mail.get_body(preferencelist=("plain",))
            match = INVITATION_LINK.search(str(body.get_content() if body else ""))
            if match:
                return match.group(1)
        raise AssertionError(f"no invitation mail to {email}")

    def onboard(self, email: str, role: str, *, name: str | None = None) -> dict[str, str]:
        """Invite ``email`` with the command line and accept the mailed link through the
        gateway, as the invitee: ``{"email", "password", "recovery_code", "account_id"}``."""
        args = ["hds_auth", "invite", "--email", email, "--role", role]
        invited = self.command(*args, *(["--name", name] if name else []))
        assert invited.returncode == 0, invited.stderr
        password = secrets.token_urlsafe(18)
        accepted = httpx.post(
            f"{self.gateway_url}/auth/v1/invitation/accept",
            json={"token": self.invitation_token(email), "password": password},
            timeout=60,
        )
        assert accepted.status_code == 201, accepted.text
        body = accepted.json()
        return {
            "email": email,
            "password": password,
            "recovery_code": body["recovery_code"],
            "account_id": body["account_id"],
        }

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
            # The tests' own address plays the ingress controller in front of the gateway,
            # as deploy/kubernetes configures it: its X-Forwarded-For names the client.
            "HDS_GATEWAY_TRUSTED_PROXIES": "127.0.0.1",
            **(extra_env or {}),
        }
        store = s3_server.blobstore(bucket)
        async with store:
            await store.ensure_bucket()
        for name in local_runner.MIGRATED:
            subprocess.run([sys.executable, "-m", f"hds_{name}", "migrate"], env=env, check=True)
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
            # Institutions are onboarded by invitation, as in production.
            running.institution = running.onboard(
                f"radiology-{base_port}@example.org", "institution", name="E2E Radiology"
            )
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


def publish(
    suite: RunningSuite,
    folder: Path,
    birth_date: str,
    credentials: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Publish the DICOM and PDF files under ``folder`` as the suite's institution (or
    the account of ``credentials``) with the suite's client, as ``hds publish`` does; the
    result as its ``--json`` prints it."""
    credentials = credentials or suite.institution
    uploads = find_uploads([folder])

    async def run() -> PublishResult:
        async with SuiteClient(suite.gateway_url) as api:
            return await publish_uploads(
                api,
                uploads=uploads,
                birth_date=parse_birth_date(birth_date),
                email=credentials["email"],
                password=credentials["password"],
            )

    # In a thread of its own: its event loop is independent of the test's.
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(asyncio.run, run()).result(timeout=120)
    return asdict(result)


# -- people of the suite ---------------------------------------------------------------------


def register_patient(suite: RunningSuite, client: httpx.Client, password: str) -> dict[str, str]:
    """A registered, activated patient: ``id``, ``email``, ``recovery_code``."""
    import re
    import uuid

    email = f"patient-{uuid.uuid4().hex[:10]}@example.org"
    registered = client.post(
        "/auth/v1/register", json={"email": email, "password": password, "role": "patient"}
    )
    assert registered.status_code == 201, registered.text
    mail = suite.smtp.messages_to(email)[-1]
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    link = re.search(r"https?://\S+/auth/v1/activate\?token=\S+", body.get_content())
    assert link is not None
    assert httpx.get(link.group(0), timeout=30).status_code == 200
    return {
        "id": registered.json()["id"],
        "email": email,
        "recovery_code": registered.json()["recovery_code"],
    }


def log_in(client: httpx.Client, email: str, password: str) -> dict[str, Any]:
    """The token pair of a login (access and refresh token)."""
    response = client.post("/auth/v1/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def institution_headers(suite: RunningSuite, client: httpx.Client) -> dict[str, str]:
    credentials = suite.institution
    return bearer(log_in(client, credentials["email"], credentials["password"])["access_token"])


def onboard_admin(suite: RunningSuite) -> dict[str, str]:
    """An administrator onboarded by invitation: ``email`` and ``password``."""
    import uuid

    return suite.onboard(f"admin-{uuid.uuid4().hex[:10]}@example.org", "admin")


def dlx_token(client: httpx.Client, code: str, birth_date: str) -> str:
    """A DLX token for ``code`` (an ApiError when the suite refuses one)."""
    return SyncSuiteClient(http=client).dlx_token(code, birth_date)
