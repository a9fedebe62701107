"""Problem classes whose raise sites all say the same thing.

``class AccountNotFound(NotFound, DefaultDetail, slug="account-not-found",
detail="No such account."):`` names the text once, in the class statement, instead of an
``__init__`` per class that only fills in its default: ``raise AccountNotFound()`` answers
with it, ``raise AccountNotFound("No account with this e-mail address.")`` with another.
The status base comes first, so its own ``__init__`` (``Unauthorized``'s
``WWW-Authenticate``, ``ServiceUnavailable``'s ``Retry-After``) still runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from hds_common.errors import ProblemError

__all__ = ["DefaultDetail"]


class DefaultDetail(ProblemError):
    """A problem type with a default ``detail``, given as ``detail=`` in its class
    statement."""

    default_detail: ClassVar[str | None] = None

    def __init_subclass__(cls, *, detail: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if detail is not None:
            cls.default_detail = detail

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(self.default_detail if detail is None else detail, **kwargs)
