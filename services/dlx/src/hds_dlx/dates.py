"""The dates DLX reads: answers (``YYYYMMDD`` per the standard, ``YYYY-MM-DD``
tolerated) and storage's item dates (DICOM DA or ISO)."""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["parse_date"]


def parse_date(value: str) -> dt.date | None:
    """``YYYYMMDD`` or ``YYYY-MM-DD`` as a date; None for anything else."""
    if re.fullmatch(r"[0-9]{8}", value):
        digits = value
    elif re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        digits = value.replace("-", "")
    else:
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
