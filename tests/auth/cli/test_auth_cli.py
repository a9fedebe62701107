"""``python -m hds_auth``: invite and the invitation commands, ensure-demo (development
only), rotate-keys, jwks.

The entry point runs as a real subprocess; the longer scenarios call the same command
functions in-process (a subprocess pays a few seconds of imports each time)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from hds_auth.__main__ import ensure_demo, invite, parser, run
from hds_auth.config import Settings
from hds_common.settings import SuiteSettings
from tests.auth.support import INVITATION_LINK, PASSWORD, AppFactory


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
            "HDS_ENVIRONMENT": "test",
        }
        # What the embedded default adds for its demo institution.
        self.demo_env = {"HDS_ENVIRONMENT": "development", "HDS_AUTH_DEMO_INSTITUTION": "true"}

    def settings(self, *, demo: bool = False) -> Settings:
        return Settings(
            database_url=self.env["HDS_AUTH_DATABASE_URL"],
            signing_key_dir=self.root / "keys",
            outbox_dir=self.root / "outbox",
            smtp_host="",
            argon2_time_cost=1,
            argon2_memory_kib=1024,
            demo_institution=demo,
            suite=SuiteSettings(environment="development" if demo else "test"),
        )

    def outbox_mails(self) -> list[str]:
        """The text of every mail in the outbox."""
        texts = []
        for path in sorted((self.root / "outbox").glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            texts.append(str(message.get_content()))
        return texts

    async def run(self, *args: str, demo: bool = False) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hds_auth",
            *args,
            cwd=self.root,
            env={**os.environ, **self.env, **(self.demo_env if demo else {})},
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
    code, stdout, stderr = await cli.run("ensure-demo", "--output", str(output), demo=True)
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
    assert await ensure_demo(cli.settings(demo=True), output=output) == 0
    assert "left unchanged" in capsys.readouterr().out
    assert output.read_bytes() == first_bytes

    assert await _login(make_auth_app, cli, credentials["email"], credentials["password"]) == 200


@pytest.mark.slow
async def test_ensure_demo_is_refused_outside_development(cli: Cli) -> None:
    output = cli.root / "var" / "demo-credentials.json"
    # Without the setting, in development as in test: refused, nothing written.
    for extra in ({"HDS_ENVIRONMENT": "development"}, {"HDS_ENVIRONMENT": "test"}):
        cli.env.update(extra)
        code, stdout, stderr = await cli.run("ensure-demo", "--output", str(output))
        assert code == 1, stdout
        assert "development only" in stderr
    # The setting outside development is refused by the settings themselves.
    cli.env.update({"HDS_ENVIRONMENT": "production", "HDS_AUTH_DEMO_INSTITUTION": "true"})
    cli.env["HDS_INTERNAL_SECRET"] = "a-real-random-production-secret-0123"
    code, _, stderr = await cli.run("ensure-demo", "--output", str(output))
    assert code == 2
    assert "HDS_AUTH_DEMO_INSTITUTION" in stderr
    assert not output.exists()
    assert not cli.database.exists() or b"demo-radiology" not in cli.database.read_bytes()
    with pytest.raises(ValidationError, match="HDS_AUTH_DEMO_INSTITUTION"):
        Settings(
            demo_institution=True,
            suite=SuiteSettings(
                environment="production",
                internal_secret=SecretStr("a-real-random-production-secret-0123"),
            ),
        )


async def test_ensure_demo_function_refuses_without_the_setting(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    output = cli.root / "var" / "demo-credentials.json"
    assert await ensure_demo(cli.settings(), output=output) == 1
    assert "development only" in capsys.readouterr().err
    assert not output.exists()


async def test_no_command_creates_an_account_with_a_password() -> None:
    for command in (
        "create-account --email x@example.org --password password123 --role institution",
        "invite --email x@example.org --password password123 --role institution",
    ):
        with pytest.raises(SystemExit) as exited:
            parser().parse_args(command.split())
        assert exited.value.code == 2
    assert "--password" not in parser().format_help()


@pytest.mark.slow
async def test_invite_command_mails_a_link_the_invitee_accepts(
    cli: Cli, make_auth_app: AppFactory
) -> None:
    code, stdout, stderr = await cli.run(
        "invite", "--email", "Radiology@Example.org", "--role", "institution",
        "--name", "Radiologie Nord", "--code-validity-days", "60",
    )  # fmt: skip
    assert code == 0, stderr
    invitation = json.loads(stdout)
    assert invitation["email"] == "radiology@example.org"
    assert (invitation["state"], invitation["mail_sent"]) == ("pending", True)
    assert invitation["account_id"] is None
    [mail] = cli.outbox_mails()
    match = INVITATION_LINK.search(mail)
    assert match, mail
    token = match.group(2)
    # The operator running the command sees that an invitation exists, not its link.
    assert token not in stdout + stderr
    assert "password" not in invitation
    assert "recovery_code" not in stdout

    async with make_auth_app(
        database_url=f"sqlite:///{cli.database}", signing_key_dir=cli.root / "keys"
    ) as harness:
        accepted = await harness.client.post(
            "/auth/v1/invitation/accept", json={"token": token, "password": PASSWORD}
        )
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["recovery_code"]
        login = await harness.client.post(
            "/auth/v1/login", json={"email": "radiology@example.org", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        me = await harness.client.get(
            "/auth/v1/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
        )
        assert me.json()["institution"] == {
            "name": "Radiologie Nord",
            "default_code_validity_days": 60,
        }
        # (Inside the block: the harness empties the tables when it stops.)
        code, stdout, stderr = await cli.run("invitations")
        assert code == 0, stderr
        [listed] = json.loads(stdout)
        assert (listed["state"], listed["account_id"]) == (
            "accepted",
            accepted.json()["account_id"],
        )
        assert accepted.json()["recovery_code"] not in stdout
        code, _, stderr = await cli.run("resend-invitation", "--id", invitation["id"])
        assert code == 1
        assert "accepted" in stderr


async def test_a_refused_invitation_is_an_error_message_and_exit_1(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = cli.settings()
    refused = await invite(
        settings, email="not an address", role="institution", name=None,
        quota_bytes=None, default_code_validity_days=None,
    )  # fmt: skip
    assert refused == 1
    assert "error: email" in capsys.readouterr().err
    args = parser().parse_args(
        "invite --email p@example.org --role patient --code-validity-days 40".split()
    )
    assert await run(args, settings) == 1
    assert "Only institutions" in capsys.readouterr().err
    assert cli.outbox_mails() == []


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
    assert await ensure_demo(cli.settings(demo=True), output=output) == 0
    credentials = json.loads(output.read_text())
    cli.database.unlink()  # a fresh database, the credentials file kept
    assert await ensure_demo(cli.settings(demo=True), output=output) == 0
    assert "recreated" in capsys.readouterr().out
    assert json.loads(output.read_text()) == credentials
    assert await _login(make_auth_app, cli, credentials["email"], credentials["password"]) == 200


async def test_ensure_demo_refuses_when_the_file_is_lost(
    cli: Cli, capsys: pytest.CaptureFixture[str]
) -> None:
    output = cli.root / "var" / "demo-credentials.json"
    assert await ensure_demo(cli.settings(demo=True), output=output) == 0
    output.unlink()
    assert await ensure_demo(cli.settings(demo=True), output=output) == 1
    assert "cannot be recovered" in capsys.readouterr().err
    assert not output.exists()
