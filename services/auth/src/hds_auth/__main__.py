"""``python -m hds_auth migrate|serve|create-account|ensure-demo|rotate-keys|jwks``.

Heavier modules (FastAPI, SQLAlchemy, the service) are imported by the commands that need
them, so the key commands answer quickly. Logs go to stderr; stdout carries only the
command's answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
from pathlib import Path

from hds_auth.config import Settings
from hds_common.app import serve as serve_app
from hds_common.logs import configure_logging

DEMO_NAME = "Demo Radiology"
DEMO_EMAIL = "demo-radiology@example.org"
ROLES = ("patient", "referrer", "institution", "admin")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        return serve(settings)
    configure_logging("auth", level=settings.suite.log_level, json=settings.suite.log_json)
    if args.command in ("rotate-keys", "jwks"):
        return keys_command(settings, rotate=args.command == "rotate-keys")
    return asyncio.run(run(args, settings))


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """The commands that use the database; a refused request is a message and exit 1."""
    from hds_common.errors import ProblemError

    try:
        if args.command == "migrate":
            from hds_auth.db import migrate

            await migrate(settings.database_url)
            return 0
        if args.command == "create-account":
            return await create_account(
                settings,
                email=args.email,
                password=args.password,
                role=args.role,
                name=args.name,
                activated=args.activated,
            )
        return await ensure_demo(settings, output=args.output, email=args.email)
    except ProblemError as exc:
        print(f"error: {exc.detail or exc.instance_title}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    command_line = argparse.ArgumentParser(prog="python -m hds_auth")
    commands = command_line.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service")
    commands.add_parser("migrate", help="migrate the database to the newest revision")
    create = commands.add_parser("create-account", help="create an account of any role")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name")
    create.add_argument("--activated", action="store_true", help="no activation mail needed")
    demo = commands.add_parser(
        "ensure-demo", help="create the demo institution once and write its credentials"
    )
    demo.add_argument("--output", type=Path, default=Path("var/demo-credentials.json"))
    demo.add_argument("--email", default=DEMO_EMAIL)
    commands.add_parser("rotate-keys", help="add a new signing key (the old one stays published)")
    commands.add_parser("jwks", help="print the published signing keys (JWKS)")
    return command_line


def serve(settings: Settings) -> int:
    serve_app(
        "hds_auth.main:app_from_env",
        host=settings.host,
        port=settings.port,
        forwarded_allow_ips=settings.suite.forwarded_allow_ips,
    )
    return 0


def keys_command(settings: Settings, *, rotate: bool) -> int:
    from hds_auth.signing import keyring_from

    keyring = keyring_from(settings)
    keyring.ensure_key()
    if rotate:
        key = keyring.rotate()
        published = [published.kid for published in keyring.published()]
        print(json.dumps({"kid": key.kid, "published": published}))
    else:
        print(json.dumps(keyring.jwks(), indent=2))
    return 0


async def create_account(
    settings: Settings,
    *,
    email: str,
    password: str,
    role: str,
    name: str | None,
    activated: bool,
) -> int:
    from hds_auth import service
    from hds_auth.db import migrate
    from hds_auth.main import open_runtime

    if settings.migrate_on_start:
        await migrate(settings.database_url)
    async with open_runtime(settings) as runtime, runtime.session_maker() as session:
        async with session.begin():
            account, recovery_code, mail_sent = await service.create_account(
                session,
                runtime,
                email=email,
                password=password,
                role=role,
                name=name,
                activated=activated,
            )
    answer = {
        "id": str(account.id),
        "email": account.email,
        "role": account.role,
        "activated": activated,
        "activation_mail_sent": mail_sent,
        "recovery_code": recovery_code,
    }
    print(json.dumps(answer, indent=2))
    return 0


async def ensure_demo(settings: Settings, *, output: Path, email: str = DEMO_EMAIL) -> int:
    """Idempotent: the first run creates an activated institution with a generated
    password and writes ``{"email", "password", "role", "name"}`` to ``output``; later
    runs leave the file alone (and recreate the account from it if the database is new)."""
    from hds_auth import repository, service
    from hds_auth.db import migrate
    from hds_auth.main import open_runtime

    if settings.migrate_on_start:
        await migrate(settings.database_url)
    credentials: dict[str, str] | None = None
    if output.exists():
        credentials = json.loads(output.read_text(encoding="utf-8"))
    fresh = credentials is None
    async with open_runtime(settings) as runtime, runtime.session_maker() as session:
        async with session.begin():
            wanted = credentials["email"] if credentials else email
            existing = await repository.get_account_by_email(session, wanted.lower())
            if existing is not None:
                if credentials is None:
                    print(
                        f"error: {wanted} exists but {output} is missing; its password cannot "
                        "be recovered. Use a new database, or --output with the file the "
                        "first run wrote.",
                        file=sys.stderr,
                    )
                    return 1
                print(f"demo institution {wanted} exists; {output} left unchanged")
                return 0
            if credentials is None:
                credentials = {
                    "email": email,
                    "password": secrets.token_urlsafe(15),
                    "role": "institution",
                    "name": DEMO_NAME,
                }
            await service.create_account(
                session,
                runtime,
                email=credentials["email"],
                password=credentials["password"],
                role="institution",
                name=credentials.get("name", DEMO_NAME),
                activated=True,
            )
    if fresh:
        _write_private(output, json.dumps(credentials, indent=2) + "\n")
        print(f"demo institution created; credentials written to {output}:")
        print(json.dumps(credentials, indent=2))
    else:
        print(f"demo institution recreated from {output}")
    return 0


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    sys.exit(main())
