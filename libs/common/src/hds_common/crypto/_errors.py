"""Exception hierarchy of :mod:`hds_common.crypto`."""

from __future__ import annotations

__all__ = ["CryptoError", "GrantError", "IntegrityError"]


class CryptoError(Exception):
    """Base class of every error raised by :mod:`hds_common.crypto`."""


class IntegrityError(CryptoError):
    """Authentication failed: wrong key, wrong context/object id, or tampered/truncated data.

    Deliberately carries no detail about *which* check failed beyond a short message,
    so callers cannot turn it into a decryption oracle.
    """


class GrantError(CryptoError):
    """A grant token is malformed, was not sealed to this service, or has expired."""
