"""HTTP routes of the access code service."""

from hds_codes.api import codes, imports, internal

ROUTERS = (codes.router, imports.router, internal.router)

__all__ = ["ROUTERS"]
