"""The arithmetic of the lockout per code and of the slowdown per client address."""

from __future__ import annotations

import datetime as dt

from hds_codes.config import Settings

__all__ = ["client_delay", "lock_duration"]


def client_delay(settings: Settings, failures: int) -> float:
    """Seconds an attempt waits when its client has ``failures`` (this attempt included)
    in the current window: nothing within the allowance, then doubling up to the cap."""
    excess = failures - settings.client_max_failures
    if excess <= 0:
        return 0.0
    delay = settings.client_delay_seconds * 2.0 ** min(excess - 1, 32)
    return float(min(delay, settings.client_delay_max_seconds))


def lock_duration(settings_lock_seconds: int, max_seconds: int, lock_count: int) -> dt.timedelta:
    """15 minutes (by default) for the first lock, doubling for each further one."""
    seconds = settings_lock_seconds * (2 ** min(lock_count, 32))
    return dt.timedelta(seconds=min(seconds, max_seconds))
