"""The problems the access code service answers, one class per problem type.

Each class carries its slug and title; its status comes from its ``hds_common.errors``
base. Routes raise them and list them in ``problem_responses`` for the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from hds_common.errors import (
    BadGateway,
    Conflict,
    Forbidden,
    NotFound,
    Unauthorized,
    UnprocessableContent,
)

__all__ = [
    "AccountUnknown",
    "BirthDateInvalid",
    "CodeExpired",
    "CodeFormatInvalid",
    "CodeNotFound",
    "CodeRevoked",
    "DateOutOfRange",
    "GrantRequired",
    "InstitutionOnly",
    "InvalidCode",
    "PackageNotFound",
    "UpstreamError",
    "ValidityOutOfRange",
]


class InstitutionOnly(Forbidden):
    slug = "institution-only"


class GrantRequired(Unauthorized):
    """An account token without the key grant that issuing a code needs."""

    slug = "grant-required"


class BirthDateInvalid(UnprocessableContent):
    slug = "invalid-birth-date"


class CodeFormatInvalid(UnprocessableContent):
    slug = "invalid-code-format"


class DateOutOfRange(UnprocessableContent):
    """A search date that has no UTC equivalent (e.g. in the year 10000 in UTC)."""

    slug = "invalid-date"


class ValidityOutOfRange(UnprocessableContent):
    slug = "validity-out-of-range"


class CodeNotFound(NotFound):
    """Also the answer for another institution's code."""

    slug = "code-not-found"


class CodeRevoked(Conflict):
    slug = "code-revoked"


class InvalidCode(Unauthorized):
    """One answer for wrong, unknown, revoked and locked codes."""

    slug = "invalid-code"
    title = "Access code not accepted"

    def __init__(
        self, detail: str = "The access code or the birth date is not correct.", **kwargs: Any
    ) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("WWW-Authenticate", 'HDS-Access-Code realm="hds"')
        super().__init__(detail, headers=headers, **kwargs)


class CodeExpired(Forbidden):
    """The answers were right, but the code has expired."""

    slug = "code-expired"
    title = "Access code expired"

    def __init__(
        self,
        detail: str = "The access code has expired; the issuing institution can reactivate it.",
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)


class AccountUnknown(Unauthorized):
    """The token's account no longer exists at the identity service."""

    slug = "account-unknown"


class PackageNotFound(NotFound):
    """Also the answer for another institution's package."""

    slug = "package-not-found"


class UpstreamError(BadGateway):
    """A neighbour failed, could not be reached, or answered a status no caller acts on."""

    slug = "upstream-error"
