"""Which upstream serves a path, and on what terms (the routing table)."""
