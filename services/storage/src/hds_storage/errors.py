"""Problems specific to the storage service (on top of :mod:`hds_common.errors`)."""

from __future__ import annotations

from typing import Any

from hds_common.errors import Conflict, NotFound, ProblemError, ServiceUnavailable

__all__ = [
    "IntegrityFailure",
    "PackageEmpty",
    "PackageIncomplete",
    "RangeNotSatisfiableProblem",
    "identity_unavailable",
]


class IntegrityFailure(ProblemError):
    """A stored object or metadata row failed authentication: tampered, truncated or
    swapped at rest. 500 because the fault is ours (our storage), not an upstream's."""

    status = 500
    slug = "integrity-error"
    title = "Stored data failed its integrity check"


class RangeNotSatisfiableProblem(ProblemError):
    status = 416
    slug = "range-not-satisfiable"
    title = "Range not satisfiable"

    def __init__(self, total: int) -> None:
        super().__init__(
            f"the representation has {total} bytes",
            headers={"Content-Range": f"bytes */{total}"},
        )


class PackageIncomplete(Conflict):
    """Consumers see a package only once it is complete; DLX answers 503 meanwhile."""

    slug = "package-incomplete"
    title = "Package is still being ingested"

    def __init__(self, retry_after: int, **kwargs: Any) -> None:
        super().__init__(
            "the package is still being ingested; try again later",
            headers={"Retry-After": str(retry_after)},
            retry_after=retry_after,
            **kwargs,
        )


class PackageEmpty(NotFound):
    """A complete package that holds nothing (any more): never imported or downloaded as
    if it were a package with no studies."""

    slug = "package-empty"
    title = "Package holds no data"

    def __init__(self) -> None:
        super().__init__(
            "the package holds no studies or reports (any more); it may have been "
            "deleted after its retention period"
        )


def identity_unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"the identity service cannot be reached: {detail}",
        slug="identity-unavailable",
        retry_after=10,
    )
