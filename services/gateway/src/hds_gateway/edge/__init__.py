"""What the gateway does to every request before it leaves (limits, tokens, hand-over)."""
