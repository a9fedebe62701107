"""Structured JSON logs (structlog) for every service, including uvicorn's own lines."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

__all__ = ["EMAIL_REDACTED", "REDACTED", "configure_logging", "redact_emails", "redact_path"]

# E-mail addresses never reach a log line, whichever library writes it: in clear, or
# percent-encoded in a URL's query string (``email=someone%40example.org``).
_EMAIL = re.compile(r"[A-Za-z0-9._%+~-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", re.IGNORECASE)
EMAIL_REDACTED = "[email]"
# Libraries whose INFO lines carry request URLs (httpx: "HTTP Request: GET …?email=…");
# our own access log covers the requests already, without query strings.
_URL_LOGGERS = ("httpx", "httpcore")


def redact_emails(value: Any) -> Any:
    """``value`` with every e-mail address replaced, strings inside containers included."""
    if isinstance(value, str):
        return _EMAIL.sub(EMAIL_REDACTED, value) if ("@" in value or "%40" in value) else value
    if isinstance(value, dict):
        return {key: redact_emails(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_emails(item) for item in value)
    return value


def _redact_processor(
    _: object, __: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    return {key: redact_emails(value) for key, value in event_dict.items()}


def configure_logging(service: str, *, level: str = "INFO", json: bool = True) -> None:
    """Route structlog and the standard library through one JSON renderer."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log duplicates our own request line, which carries the request id.
    logging.getLogger("uvicorn.access").disabled = True
    for name in _URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def _add_service(service: str) -> structlog.types.Processor:
    def processor(
        _: object, __: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


# Paths that carry an access code (portal links, DLX token calls). Codes must never reach a
# log: with the birth date they open a patient's data. Query strings are never logged.
_CODE_BEARING_PATH = re.compile(r"(/c/|/dlx/v1/token/|/dlx/v1/tokentfa/).+", re.IGNORECASE)
REDACTED = "[redacted]"


def redact_path(path: str | None) -> str | None:
    """``path`` with any access code replaced by ``[redacted]``, for logs: everything after
    a code-bearing prefix goes, since a decoded code may itself contain slashes."""
    if path is None:
        return None
    return _CODE_BEARING_PATH.sub(lambda match: match.group(1) + REDACTED, path)
