"""Institutions' access codes: issue, list, search, expire, reactivate, revoke; QR
codes and the carrier sheet."""
