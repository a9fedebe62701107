"""What the suite's own services ask of codes: a validation for DLX, and until when a
package's codes are valid."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from hds_codes.codes import repository
from hds_codes.internal.schemas import CodesValidity, ValidateResult
from hds_codes.runtime import Runtime
from hds_codes.validation.service import start_dlx_session, validate_code

__all__ = ["codes_validity", "validate_for_dlx"]


async def validate_for_dlx(
    runtime: Runtime, *, code: str, birth_date: dt.date, client: str
) -> ValidateResult:
    validated = await validate_code(runtime, code=code, birth_date=birth_date, client=client)
    # The key stays with storage; the DLX token carries only the session's grant, which
    # ends when the code is revoked or expired, and at the latest when the code expires.
    started = await start_dlx_session(runtime, validated)
    return ValidateResult(
        code_id=validated.code_id,
        package_id=validated.package_id,
        grant=started.grant,
        key_session_id=started.session_id,
        expires_at=validated.session_expires_at,
        code_expires_at=validated.code_expires_at,
    )


async def codes_validity(session: AsyncSession, package_id: str) -> CodesValidity:
    return CodesValidity(valid_until=await repository.package_codes_end(session, package_id))
