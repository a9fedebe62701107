"""``python -m hds_auth migrate|serve|invite|invitations|resend-invitation|revoke-invitation|
ensure-demo|rotate-keys|jwks``.

Accounts are onboarded by invitation: ``invite`` mails a link to the address, and the
invitee chooses the password and sees the recovery code. Nothing this command line prints
or logs opens an account. ``ensure-demo`` is the one exception, for the embedded default
in development only (``HDS_AUTH_DEMO_INSTITUTION=true``).

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
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from hds_auth.config import Settings
from hds_common.app import serve as serve_app
from hds_common.files import private_directory
from hds_common.logs import configure_logging
from hds_common.serving import HttpLimits

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import AsyncSession

    from hds_auth.runtime import Runtime

DEMO_NAME = "Demo Radiology"
DEMO_EMAIL = "demo-radiology@example.org"
ROLES = ("patient", "referrer", "institution", "admin")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
            from hds_common.db import migrate_service

            await migrate_service("hds_auth", settings.database_url)
            return 0
        if args.command == "invite":
            fields = {name: value for name, value in vars(args).items() if name != "command"}
            return await invite(settings, **fields)
        if args.command == "invitations":
            return await list_invitations(settings)
        if args.command == "resend-invitation":
            return await resend_invitation(settings, invitation_id=args.id)
        if args.command == "revoke-invitation":
            return await revoke_invitation(settings, invitation_id=args.id)
        return await ensure_demo(settings, output=args.output, email=args.email)
    except ProblemError as exc:
        print(f"error: {exc.detail or exc.title}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    command_line = argparse.ArgumentParser(prog="python -m hds_auth")
    commands = command_line.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the HTTP service")
    commands.add_parser("migrate", help="migrate the database to the newest revision")
    invite = commands.add_parser(
        "invite",
        help="invite an account of any role: the invitee gets a link, chooses the password "
        "and sees the recovery code",
    )
    # The destinations are the fields of InvitationCreate: run() hands them on as they are.
    invite.add_argument("--email", required=True)
    invite.add_argument("--role", required=True, choices=ROLES)
    invite.add_argument("--name")
    invite.add_argument("--quota-bytes", type=int)
    invite.add_argument(
        "--code-validity-days",
        dest="default_code_validity_days",
        type=int,
        help="institutions: 30 to 90",
    )
    commands.add_parser("invitations", help="list the invitations and their states")
    resend = commands.add_parser(
        "resend-invitation", help="mail a new link (the old one stops working)"
    )
    resend.add_argument("--id", required=True, type=uuid.UUID)
    revoke = commands.add_parser("revoke-invitation", help="make an invitation's link void")
    revoke.add_argument("--id", required=True, type=uuid.UUID)
    demo = commands.add_parser(
        "ensure-demo",
        help="development only (HDS_AUTH_DEMO_INSTITUTION=true): create the demo "
        "institution once and write its credentials",
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
        limits=HttpLimits.from_settings(settings.suite),
    )
    return 0


def keys_command(settings: Settings, *, rotate: bool) -> int:
    from hds_auth.signing.keyring import keyring_from

    keyring = keyring_from(settings)
    keyring.ensure_key()
    if rotate:
        key = keyring.rotate()
        published = [published.kid for published in keyring.published()]
        print(json.dumps({"kid": key.kid, "published": published}))
    else:
        print(json.dumps(keyring.jwks(), indent=2))
    return 0


async def invite(settings: Settings, **fields: Any) -> int:
    """Invite an account (``fields`` as the command line names them, those of
    ``InvitationCreate``); prints the invitation (its state, never its link)."""
    from hds_auth.invitations import service as invitations
    from hds_auth.invitations.schemas import InvitationCreate

    request = _valid_or_none(InvitationCreate, fields)
    if request is None:
        return 1
    async with _runtime_session(settings) as (runtime, session):
        invitation, mail_sent = await invitations.invite(session, runtime, request)
        answer = invitations.view(invitation, mail_sent=mail_sent)
    print(answer.model_dump_json(indent=2))
    return 0 if mail_sent else 3


async def list_invitations(settings: Settings) -> int:
    from hds_auth.invitations import service as invitations

    async with _runtime_session(settings) as (_runtime, session):
        found = [
            invitations.view(i).model_dump(mode="json") for i in await invitations.list_all(session)
        ]
    print(json.dumps(found, indent=2))
    return 0


async def resend_invitation(settings: Settings, *, invitation_id: uuid.UUID) -> int:
    from hds_auth.invitations import service as invitations

    async with _runtime_session(settings) as (runtime, session):
        found = await invitations.get_or_404(session, invitation_id)
        invitation, mail_sent = await invitations.resend(session, runtime, found)
        answer = invitations.view(invitation, mail_sent=mail_sent)
    print(answer.model_dump_json(indent=2))
    return 0 if mail_sent else 3


async def revoke_invitation(settings: Settings, *, invitation_id: uuid.UUID) -> int:
    from hds_auth.invitations import service as invitations

    async with _runtime_session(settings) as (_runtime, session):
        found = await invitations.get_or_404(session, invitation_id)
        await invitations.revoke(session, found)
        answer = invitations.view(found)
    print(answer.model_dump_json(indent=2))
    return 0


ModelT = TypeVar("ModelT", bound="BaseModel")


def _valid_or_none(model: type[ModelT], values: dict[str, Any]) -> ModelT | None:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "input"
            print(f"error: {field}: {error['msg']}", file=sys.stderr)
        return None


@asynccontextmanager
async def _runtime_session(
    settings: Settings,
) -> AsyncIterator[tuple[Runtime, AsyncSession]]:
    """The runtime and one transaction, committed when the block ends without error."""
    from hds_auth.runtime import open_runtime
    from hds_common.db import migrate_service

    if settings.migrate_on_start:
        await migrate_service("hds_auth", settings.database_url)
    async with open_runtime(settings) as runtime, runtime.session_maker() as session:
        async with session.begin():
            yield runtime, session


async def ensure_demo(settings: Settings, *, output: Path, email: str = DEMO_EMAIL) -> int:
    """Idempotent: the first run creates an activated institution with a generated
    password and writes ``{"email", "password", "role", "name"}`` to ``output``; later
    runs leave the file alone (and recreate the account from it if the database is new).

    The one account whose password anyone but its holder sees, so only for the embedded
    default in development (``HDS_AUTH_DEMO_INSTITUTION=true``, which the settings refuse
    outside ``HDS_ENVIRONMENT=development``); everyone else is invited."""
    from hds_auth.account import repository
    from hds_auth.registration.service import create_account

    if not settings.demo_institution or settings.suite.environment != "development":
        print(
            "error: the demo institution is for the embedded default in development only "
            "(HDS_ENVIRONMENT=development and HDS_AUTH_DEMO_INSTITUTION=true); onboard "
            "institutions with `python -m hds_auth invite --role institution`",
            file=sys.stderr,
        )
        return 1
    credentials: dict[str, str] | None = None
    if output.exists():
        credentials = json.loads(output.read_text(encoding="utf-8"))
    fresh = credentials is None
    async with _runtime_session(settings) as (runtime, session):
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
        await create_account(
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
    private_directory(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


if __name__ == "__main__":
    sys.exit(main())
