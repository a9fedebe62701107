"""Fixtures of the access code service's tests (defined in tests.codes.support)."""

from tests.codes.support import codes, hood, issuer, postgres_url, storage_private_key

__all__ = ["codes", "hood", "issuer", "postgres_url", "storage_private_key"]
