"""Outgoing mail: SMTP (aiosmtplib) when a server is configured, otherwise ``.eml`` files
in the outbox directory (the embedded default), so a developer can open them."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import os
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib
import structlog

from hds_auth.config import Settings
from hds_common.files import private_directory

__all__ = [
    "MailError",
    "Mailer",
    "OutboxMailer",
    "SmtpMailer",
    "build_message",
    "mailer_from",
    "send_or_log",
]

log = structlog.get_logger("hds.auth.mail")


class MailError(Exception):
    """The mail could not be handed over."""


class Mailer(Protocol):
    # The service's address (HDS_AUTH_MAIL_FROM), the From of every mail it sends.
    sender: str

    async def send(self, message: EmailMessage) -> None: ...


async def send_or_log(
    mailer: Mailer, *, to: str, subject: str, text: str, event: str, **context: str
) -> bool:
    """Send a mail whose failure must not fail the request: logged as ``event`` (with
    ``context``, never the address), and False."""
    try:
        await mailer.send(build_message(sender=mailer.sender, to=to, subject=subject, text=text))
    except MailError as exc:
        log.error(event, error=str(exc), **context)
        return False
    return True


def build_message(*, sender: str, to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    domain = email.utils.parseaddr(sender)[1].partition("@")[2] or "localhost"
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    message.set_content(text)
    return message


class SmtpMailer:
    """Hands each mail to the configured SMTP server (a connection per mail)."""

    def __init__(self, settings: Settings) -> None:
        self.sender = settings.mail_from
        self.server = f"{settings.smtp_host}:{settings.smtp_port}"
        # aiosmtplib.send's connection arguments, built once from the settings.
        self._connection: dict[str, Any] = {
            "hostname": settings.smtp_host,
            "port": settings.smtp_port,
            "username": settings.smtp_username or None,
            "password": settings.smtp_password.get_secret_value() or None,
            "start_tls": settings.smtp_starttls,
            "timeout": settings.smtp_timeout_seconds,
        }

    async def send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(message, **self._connection)
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailError(f"SMTP delivery to {self.server} failed: {exc}") from exc


class OutboxMailer:
    def __init__(self, directory: Path, *, sender: str) -> None:
        self.directory = Path(directory)
        self.sender = sender

    async def send(self, message: EmailMessage) -> None:
        try:
            await asyncio.to_thread(self._write, message)
        except OSError as exc:
            raise MailError(f"writing to the outbox {self.directory} failed: {exc}") from exc

    def _write(self, message: EmailMessage) -> None:
        private_directory(self.directory)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(message.as_bytes())
        # Renamed into place so a reader never sees half a message.
        tmp.rename(path)


def mailer_from(settings: Settings) -> Mailer:
    if settings.smtp_host:
        return SmtpMailer(settings)
    return OutboxMailer(settings.outbox_dir, sender=settings.mail_from)
