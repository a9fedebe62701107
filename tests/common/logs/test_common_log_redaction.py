"""No e-mail address reaches a log line, whichever logger writes it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from hds_common.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """configure_logging sets process-wide state; the other tests keep theirs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    access_disabled = logging.getLogger("uvicorn.access").disabled
    structlog_config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)
    logging.getLogger("uvicorn.access").disabled = access_disabled
    structlog.configure(**structlog_config)


def _lines(captured: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def test_addresses_are_replaced_in_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", level="INFO", json=True)
    structlog.get_logger("hds.test").info(
        "mail_failed",
        error="550 <Recipient.One@Example.org>: no such user",
        to=["two@example.org"],
    )
    logging.getLogger("some.library").warning("lookup ?email=three%40example.org failed")

    captured = capsys.readouterr().err
    assert "example.org" not in captured.lower()
    lines = _lines(captured)
    assert lines[0]["error"] == "550 <[email]>: no such user"
    assert lines[0]["to"] == ["[email]"]
    assert lines[1]["event"] == "lookup ?email=[email] failed"


def test_the_http_clients_request_lines_are_not_logged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", level="INFO", json=True)
    logging.getLogger("httpx").info("HTTP Request: GET http://auth/internal/v1/accounts?x=1")
    logging.getLogger("httpx").warning("a warning still is")
    captured = capsys.readouterr().err
    assert "HTTP Request" not in captured
    assert "a warning still is" in captured
