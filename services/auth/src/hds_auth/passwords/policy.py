"""The password rules every password a person chooses must meet."""

from __future__ import annotations

from functools import cache
from importlib import resources

from hds_auth.errors import PasswordTooCommon, PasswordTooLong, PasswordTooShort

__all__ = ["MAX_PASSWORD_LENGTH", "check_password_policy", "common_passwords"]

# Bounds the work one request can cause; far beyond any password a person types.
MAX_PASSWORD_LENGTH = 1024


@cache
def common_passwords() -> frozenset[str]:
    """The built-in list of common passwords (lower-cased)."""
    text = (
        resources.files("hds_auth")
        .joinpath("data/common_passwords.txt")
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def check_password_policy(password: str, *, min_length: int, email: str | None = None) -> None:
    """Raise a 422 of a specific type and a message a person understands."""
    if len(password) < min_length:
        raise PasswordTooShort(
            f"The password must be at least {min_length} characters long.",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordTooLong(
            f"The password must be at most {MAX_PASSWORD_LENGTH} characters long.",
        )
    lowered = password.strip().lower()
    if lowered in common_passwords():
        raise PasswordTooCommon(
            "This password is on the list of commonly used passwords; choose another one.",
        )
    if email and lowered in {email.lower(), email.lower().partition("@")[0]}:
        raise PasswordTooCommon(
            "The password must not be the e-mail address.",
        )
