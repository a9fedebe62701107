"""Fixtures of the ``hds`` client's tests: the codes app with stand-in neighbours
(tests.codes.support), behind a stand-in of the gateway."""

from tests.codes.support import codes, hood, issuer, postgres_url, storage_private_key

__all__ = ["codes", "hood", "issuer", "postgres_url", "storage_private_key"]
