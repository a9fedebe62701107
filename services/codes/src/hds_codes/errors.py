"""The problems the access code service answers, one class per problem type.

Each class carries its slug and title; its status comes from its ``hds_common.errors``
base. Routes raise them and list them in ``problem_responses`` for the OpenAPI document.
"""

from __future__ import annotations

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


class InstitutionOnly(Forbidden, slug="institution-only"):
    pass


class GrantRequired(Unauthorized, slug="grant-required"):
    """An account token without the key grant that issuing a code needs."""


class BirthDateInvalid(UnprocessableContent, slug="invalid-birth-date"):
    pass


class CodeFormatInvalid(UnprocessableContent, slug="invalid-code-format"):
    pass


class DateOutOfRange(UnprocessableContent, slug="invalid-date"):
    """A search date that has no UTC equivalent (e.g. in the year 10000 in UTC)."""


class ValidityOutOfRange(UnprocessableContent, slug="validity-out-of-range"):
    pass


class CodeNotFound(NotFound, slug="code-not-found"):
    """Also the answer for another institution's code."""


class CodeRevoked(Conflict, slug="code-revoked"):
    pass


class InvalidCode(Unauthorized, slug="invalid-code", title="Access code not accepted"):
    """One answer for wrong, unknown, revoked and locked codes; the client is asked for an
    access code, not a bearer token."""

    def __init__(self) -> None:
        super().__init__(
            "The access code or the birth date is not correct.",
            headers={"WWW-Authenticate": 'HDS-Access-Code realm="hds"'},
        )


class CodeExpired(Forbidden, slug="code-expired", title="Access code expired"):
    """The answers were right, but the code has expired."""

    def __init__(self) -> None:
        super().__init__("The access code has expired; the issuing institution can reactivate it.")


class AccountUnknown(Unauthorized, slug="account-unknown"):
    """The token's account no longer exists at the identity service."""


class PackageNotFound(NotFound, slug="package-not-found"):
    """Also the answer for another institution's package."""


class UpstreamError(BadGateway, slug="upstream-error"):
    """A neighbour failed, could not be reached, or answered a status no caller acts on."""
