"""Public alias of the crypto exception hierarchy (defined in :mod:`._errors`)."""

from __future__ import annotations

from ._errors import CryptoError, GrantError, IntegrityError

__all__ = ["CryptoError", "GrantError", "IntegrityError"]
