"""``python -m hds_auth``: create-account, ensure-demo, rotate-keys, jwks.

The entry point runs as a real subprocess; the longer scenarios call the same command
functions in-process (a subprocess pays a few seconds of imports each time)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from auth_harness import AppFactory

from hds_auth.__main__ import create_account, ensure_demo, parser, run
from hds_auth.config import Settings
from hds_common.errors import UnprocessableContent


class Cli:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.database = root / "var" / "auth.db"
        self.env = {
            "HDS_AUTH_DATABASE_URL": f"sqlite:///{self.database}",
            "HDS_AUTH_SIGNING_KEY_DIR": str(root / "keys"),
            "HDS_AUTH_OUTBOX_DIR": str(root / "outbox"),
            "HDS_AUTH_SMTP_HOST": "",
            "HDS_AUTH_ARGON2_TIME_COST": "1",
            "HDS_AUTH_ARGON2_MEMORY_KIB": "1024",
            "HDS_LOG_JSON": "false",
        }

    def settings(self) -> Settings:
        return Settings(
            database_url=self.env["HDS_AUTH_DATABASE_URL"],
            signing_key_dir=self.root / "keys",
            outbox_dir=self.root / "outbox",
            smtp_host="",
            argon2_time_cost=1,
            argon2_memory_kib=1024,
        )

    async def run(self, *args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hds_auth",
            *args,
            cwd=self.root,
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    # No ./var yet, as on a fresh checkout: the commands create what they need.
    return Cli(tmp_path)


async def _login(make_auth_app: Any, cli: Cli, email: str, password: str) -> int:
    async with make_auth_app(
        database_url=f"sqlite:///{cli.database}", signing_key_dir=cli.root / "keys"
    ) as harness:
        response = await harness.client.post(
            "/auth/v1/login", json={"email": email, "password": password}
        )
        return int(response.status_code)


@pytest.mark.slow
async def test_ensure_demo_command_is_idempotent(
    cli: Cli, make_auth_app: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    output = cli.root / "var" / "demo-credentials.json"
    code, stdout, stderr = await cli.run("ensure-demo", "--output", str(output))
    assert code == 0, stderr
    credentials = json.loads(output.read_text())
    assert set(credentials) == {"email", "password", "role", "name"}
    assert credentials["role"] == "institution"
    assert credentials["name"] == "Demo Radiology"
    assert len(credentials["password"]) >= 10
    assert credentials["password"] in stdout  # printed for the developer
    assert output.stat().st_mode & 0o777 == 0o600
    first_bytes = output.read_bytes()

    # The second run (in-process: same function) leaves everything as it is.
    assert await ensure_demo(cli.settings(), output=output) == 0
    assert "left unchanged" in capsys.readouterr().out
    assert output.read_bytes() == first_bytes

    assert await _login(make_auth_app, cli, credentials["email"], credentials["password"]) == 200


async def test_a_refused_account_is_an_error_message_and_exit_1(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    command = "create-account --email x@example.org --password password123 --role institution"
    args = parser().parse_args(command.split())
    assert await run(args, cli.settings()) == 1
    captured = capsys.readouterr()
    assert "recovery_code" not in captured.out
    assert "error: " in captured.err
    assert "commonly used" in captured.err


async def test_rotate_keys_and_jwks_commands(cli: Cli) -> None:
    code, stdout, stderr = await cli.run("jwks")
    assert code == 0, stderr
    [first] = json.loads(stdout)["keys"]
    code, stdout, stderr = await cli.run("rotate-keys")
    assert code == 0, stderr
    rotated = json.loads(stdout)
    assert rotated["kid"] != first["kid"]
    assert set(rotated["published"]) == {first["kid"], rotated["kid"]}
    code, stdout, _ = await cli.run("jwks")
    assert {key["kid"] for key in json.loads(stdout)["keys"]} == {first["kid"], rotated["kid"]}


async def test_ensure_demo_recreates_the_account_from_the_file(
    cli: Cli, make_auth_app: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    output = cli.root / "var" / "demo-credentials.json"
    assert await ensure_demo(cli.settings(), output=output) == 0
    credentials = json.loads(output.read_text())
    cli.database.unlink()  # a fresh database, the credentials file kept
    assert await ensure_demo(cli.settings(), output=output) == 0
    assert "recreated" in capsys.readouterr().out
    assert json.loads(output.read_text()) == credentials
    assert await _login(make_auth_app, cli, credentials["email"], credentials["password"]) == 200


async def test_ensure_demo_refuses_when_the_file_is_lost(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    output = cli.root / "var" / "demo-credentials.json"
    assert await ensure_demo(cli.settings(), output=output) == 0
    output.unlink()
    assert await ensure_demo(cli.settings(), output=output) == 1
    assert "cannot be recovered" in capsys.readouterr().err
    assert not output.exists()


async def test_create_account(
    cli: Cli, make_auth_app: AppFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await create_account(
        cli.settings(),
        email="Admin@Example.org",
        password="an admin passphrase",
        role="admin",
        name=None,
        activated=True,
    )
    assert code == 0
    out = capsys.readouterr().out
    created = json.loads(out[out.index("{\n") :])
    assert created["email"] == "admin@example.org"
    assert created["role"] == "admin"
    assert created["recovery_code"]
    assert await _login(make_auth_app, cli, "admin@example.org", "an admin passphrase") == 200

    with pytest.raises(UnprocessableContent):
        await create_account(
            cli.settings(),
            email="short@example.org",
            password="short",
            role="institution",
            name=None,
            activated=True,
        )
