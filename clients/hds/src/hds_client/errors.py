"""What goes wrong between the client and the suite, as the user reads it."""

from __future__ import annotations

import httpx

__all__ = ["ApiError", "ClientError", "Unreachable"]


class ClientError(Exception):
    """Something the user has to fix or know about; the command line prints it without a
    trace."""


class Unreachable(ClientError):
    """The gateway did not answer (down, wrong address, timeout)."""


class ApiError(ClientError):
    """An error answer of the suite: its status, and the problem (RFC 9457) it names."""

    def __init__(
        self,
        action: str,
        status: int,
        *,
        problem_type: str | None = None,
        title: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.action = action
        self.status = status
        self.problem_type = problem_type
        self.title = title
        self.detail = detail
        said = ": ".join(part for part in (title, detail) if part)
        super().__init__(f"{action} failed ({status}){': ' if said else ''}{said}")

    @property
    def slug(self) -> str | None:
        """The problem's slug (``urn:hds:problem:<slug>``), None without one."""
        prefix = "urn:hds:problem:"
        if self.problem_type and self.problem_type.startswith(prefix):
            return self.problem_type.removeprefix(prefix)
        return None

    @classmethod
    def of(cls, response: httpx.Response, action: str) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            return cls(action, response.status_code, detail=response.text[:200] or None)
        if not isinstance(body, dict):
            return cls(action, response.status_code)

        def text(name: str) -> str | None:
            value = body.get(name)
            return str(value) if value else None

        return cls(
            action,
            response.status_code,
            problem_type=text("type"),
            title=text("title"),
            detail=text("detail"),
        )
