"""The streaming proxy: the catch-all route and the upstream connections behind it."""
