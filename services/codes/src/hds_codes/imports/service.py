"""Import of a code into an account: a user key slot on the package, no data copied."""

from __future__ import annotations

import datetime as dt

from hds_codes.imports.schemas import ImportResult
from hds_codes.runtime import Runtime
from hds_codes.validation.service import validate_code

__all__ = ["import_code"]


async def import_code(
    runtime: Runtime, *, account_id: str, code: str, birth_date: dt.date, client: str
) -> ImportResult:
    """Validate ``code`` + ``birth_date`` and give the account a key slot on its package
    (storage adds the package's items to the account's holdings)."""
    validated = await validate_code(runtime, code=code, birth_date=birth_date, client=client)
    added = await runtime.storage.add_slot(
        validated.package_id, account_id=account_id, package_key=validated.package_key
    )
    # What storage counted of the package; the ids are the validated code's.
    counts = added.model_dump(include={"studies", "documents", "bytes"})
    return ImportResult(package_id=validated.package_id, code_id=validated.code_id, **counts)
