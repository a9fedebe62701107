"""Maintenance: the sweeps (dead uploads, idle packages, unheld items, orphan blobs) and
the retention of published packages."""
