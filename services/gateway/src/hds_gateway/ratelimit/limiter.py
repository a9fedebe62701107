"""Fixed-window rate limits, in memory (one replica) or in Redis (shared by replicas).

A window starts with the first request of a key and lasts ``window`` seconds; the answer
past the limit is 429 with ``Retry-After`` = the time left in the window.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hds_gateway.errors import RateLimited

__all__ = ["MemoryRateLimiter", "RateLimiter", "RedisRateLimiter", "enforce"]

log = structlog.get_logger("hds.gateway.ratelimit")


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window: int) -> float | None:
        """Count one request for ``key``; the seconds until the window resets when this
        request is over ``limit``, else None."""
        ...


class MemoryRateLimiter:
    """Counters in this process; enough for a single replica."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, float]] = {}
        self._next_sweep = 0.0

    async def hit(self, key: str, *, limit: int, window: int) -> float | None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._windows = {k: v for k, v in self._windows.items() if v[1] > now}
            self._next_sweep = now + window
        count, resets_at = self._windows.get(key, (0, 0.0))
        if resets_at <= now:
            count, resets_at = 0, now + window
        count += 1
        self._windows[key] = (count, resets_at)
        return resets_at - now if count > limit else None


class RedisRateLimiter:
    """Counters in Redis, so every replica of the gateway sees the same numbers."""

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def hit(self, key: str, *, limit: int, window: int) -> float | None:
        name = self._prefix + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(name, 0, ex=window, nx=True)
                pipe.incr(name)
                pipe.pttl(name)
                _, count, ttl_ms = await pipe.execute()
        except (RedisError, OSError) as exc:
            # Fail open: an outage of the limiter must not take the whole suite down; the
            # services keep their own lockouts (login throttling, access-code lockout).
            log.warning("rate_limit_unavailable", error=f"{type(exc).__name__}: {exc}")
            return None
        if int(count) <= limit:
            return None
        return max(int(ttl_ms), 0) / 1000 if int(ttl_ms) > 0 else float(window)


async def enforce(limiter: RateLimiter, key: str, *, limit: int, window: int) -> None:
    """Raise 429 when ``key`` is over ``limit`` requests per ``window`` (0: no limit)."""
    if limit <= 0:
        return
    retry_after = await limiter.hit(key, limit=limit, window=window)
    if retry_after is not None:
        raise RateLimited(
            "rate limit exceeded; retry later", retry_after=max(1, math.ceil(retry_after))
        )
