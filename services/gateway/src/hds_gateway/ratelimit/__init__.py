"""Fixed-window rate limits, in memory or in Redis."""
