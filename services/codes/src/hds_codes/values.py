"""The two factors of an access code, as text: the code itself and the birth date.

A code is 12 symbols of Crockford's base32 (``0-9 A-Z`` without ``I L O U``), 60 random
bits, shown as ``XXXX-XXXX-XXXX``. People read codes off paper and type them into
forms, so input is accepted in any case, with or without separators, and with the
letters Crockford defines as aliases of digits (``I``/``L`` → ``1``, ``O`` → ``0``).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

__all__ = [
    "ALPHABET",
    "CODE_BITS",
    "CODE_LENGTH",
    "InvalidBirthDate",
    "InvalidCodeFormat",
    "format_code",
    "generate_code",
    "normalise_code",
    "parse_birth_date",
]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 12
CODE_BITS = 5 * CODE_LENGTH
_ALIASES = str.maketrans({"I": "1", "L": "1", "O": "0"})
_SEPARATORS = re.compile(r"[\s\-_.]+")
_VALID = re.compile(f"[{ALPHABET}]{{{CODE_LENGTH}}}")
# Earliest birth date accepted; anything before is a typing error.
_EARLIEST_BIRTH_DATE = dt.date(1870, 1, 1)


class InvalidCodeFormat(ValueError):
    """The text cannot be an access code (wrong length or symbols)."""


class InvalidBirthDate(ValueError):
    """The text is not a birth date in ``YYYYMMDD`` or ``YYYY-MM-DD`` form."""


def generate_code() -> str:
    """A fresh code in normal form (12 symbols, no separators) from ``secrets``."""
    value = secrets.randbits(CODE_BITS)
    symbols = []
    for _ in range(CODE_LENGTH):
        symbols.append(ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(symbols))


def normalise_code(text: str) -> str:
    """The normal form of a typed code, or :class:`InvalidCodeFormat`."""
    if len(text) > 64:
        raise InvalidCodeFormat("an access code has 12 characters")
    compact = _SEPARATORS.sub("", text).upper().translate(_ALIASES)
    if not _VALID.fullmatch(compact):
        raise InvalidCodeFormat(
            "an access code has 12 characters from 0-9 and A-Z without I, L, O and U"
        )
    return compact


def format_code(code: str) -> str:
    """``XXXX-XXXX-XXXX`` for a code in normal form."""
    return f"{code[0:4]}-{code[4:8]}-{code[8:12]}"


def parse_birth_date(text: str, *, today: dt.date | None = None) -> dt.date:
    """A birth date from ``YYYYMMDD`` or ``YYYY-MM-DD``; :class:`InvalidBirthDate` else."""
    value = text.strip()
    if re.fullmatch(r"[0-9]{8}", value):
        parts = (value[0:4], value[4:6], value[6:8])
    elif re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        parts = (value[0:4], value[5:7], value[8:10])
    else:
        raise InvalidBirthDate("birth date must be YYYYMMDD or YYYY-MM-DD")
    try:
        date = dt.date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        raise InvalidBirthDate("birth date is not a calendar date") from None
    # One day of slack: the patient's local date may be ahead of UTC.
    latest = (today or dt.datetime.now(dt.UTC).date()) + dt.timedelta(days=1)
    if not _EARLIEST_BIRTH_DATE <= date <= latest:
        raise InvalidBirthDate("birth date is out of range")
    return date
