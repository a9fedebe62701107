"""Problems of the storage service: one class per problem type, each with its slug (and
title; the status comes from its :mod:`hds_common.errors` base). Raise sites raise these
classes; routes document them with ``problem_responses``."""

from __future__ import annotations

from typing import Any

import structlog

from hds_common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    ServiceUnavailable,
    Unauthorized,
    UnprocessableContent,
    UnsupportedMediaType,
)

__all__ = [
    "AccountNotFound",
    "AccountWithoutKey",
    "BlobStoreUnavailable",
    "ClientDisconnected",
    "DicomIncomplete",
    "DicomInvalid",
    "DocumentNotFound",
    "FieldTooLarge",
    "GrantInvalid",
    "GrantKeyRefused",
    "GrantMismatch",
    "GrantRequired",
    "IdentityUnavailable",
    "InstanceConflict",
    "IntegrityFailure",
    "InvalidDate",
    "InvalidField",
    "ItemNotFound",
    "KeySessionNotFound",
    "MalformedMultipart",
    "NoFiles",
    "NoKeySlot",
    "ObjectNotFound",
    "PackageComplete",
    "PackageEmpty",
    "PackageIncomplete",
    "PackageNotFound",
    "PackageRetired",
    "PatientMismatch",
    "PatientRequired",
    "PdfTooLarge",
    "RangeNotSatisfiableProblem",
    "RecipientNotFound",
    "RoleRequired",
    "SealedKeyInvalid",
    "SessionAlreadyExpired",
    "SessionEnded",
    "SessionTooLong",
    "ShareGone",
    "ShareNotFound",
    "ShareWithSelf",
    "StudyNotFound",
    "UnknownField",
    "UnsupportedContent",
    "UploadExpired",
    "UploadInProgress",
    "integrity_failure",
    "not_held",
]

log = structlog.get_logger("hds.storage.errors")


# -- 400 ----------------------------------------------------------------------------------


class ClientDisconnected(BadRequest):
    slug = "client-disconnected"


class MalformedMultipart(BadRequest):
    slug = "malformed-multipart"


class NoFiles(BadRequest):
    slug = "no-files"


class SealedKeyInvalid(BadRequest):
    slug = "sealed-key-invalid"


class SessionAlreadyExpired(BadRequest):
    """A key session whose expiry has passed before it started."""

    slug = "session-expired"


class SessionTooLong(BadRequest):
    slug = "session-too-long"


class ShareWithSelf(BadRequest):
    slug = "share-with-self"


# -- 401 ----------------------------------------------------------------------------------


class GrantInvalid(Unauthorized):
    """A grant that does not open (or whose session key does not unwrap): log in again."""

    slug = "grant-invalid"


class SessionEnded(Unauthorized):
    slug = "session-ended"


# -- 403 ----------------------------------------------------------------------------------


class GrantKeyRefused(Forbidden):
    """A key that opens, but not this package (a grant's, or one sealed for an import)."""

    slug = "grant-invalid"


class GrantMismatch(Forbidden):
    slug = "grant-mismatch"


class GrantRequired(Forbidden):
    slug = "grant-required"


class NoKeySlot(Forbidden):
    slug = "no-key-slot"


class RoleRequired(Forbidden):
    slug = "role-required"


# -- 404 ----------------------------------------------------------------------------------


class AccountNotFound(NotFound):
    slug = "account-not-found"


class PackageNotFound(NotFound):
    slug = "package-not-found"


class ItemNotFound(NotFound):
    slug = "item-not-found"


class StudyNotFound(NotFound):
    slug = "study-not-found"


class DocumentNotFound(NotFound):
    slug = "document-not-found"


class ObjectNotFound(NotFound):
    slug = "object-not-found"


class RecipientNotFound(NotFound):
    """Unknown, inactive or not accepting shares: one answer for all three."""

    slug = "recipient-not-found"


class ShareNotFound(NotFound):
    slug = "share-not-found"


class ShareGone(NotFound):
    slug = "share-gone"


class KeySessionNotFound(NotFound):
    slug = "session-not-found"


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


def not_held(kind: str) -> NotFound:
    """The 404 of a study or document the account does not hold."""
    problem = StudyNotFound if kind == "study" else DocumentNotFound
    return problem(f"no such {kind} in your holdings")


# -- 409 ----------------------------------------------------------------------------------


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


class PackageComplete(Conflict):
    """Uploads go into open packages only."""

    slug = "package-complete"

    def __init__(self) -> None:
        super().__init__("the package is complete; open a new package")


class PackageRetired(Conflict):
    slug = "package-retired"
    title = "Package deleted after its retention period"

    def __init__(self) -> None:
        super().__init__(
            "the package was deleted after its retention period; publish it again to "
            "issue new codes"
        )


class UploadInProgress(Conflict):
    slug = "upload-in-progress"


class InstanceConflict(Conflict):
    slug = "instance-conflict"


# -- 413, 415, 416, 422 ----------------------------------------------------------------------


class FieldTooLarge(PayloadTooLarge):
    slug = "field-too-large"


class PdfTooLarge(PayloadTooLarge):
    slug = "pdf-too-large"


class UnsupportedContent(UnsupportedMediaType):
    slug = "unsupported-content"


class RangeNotSatisfiableProblem(ProblemError):
    status = 416
    slug = "range-not-satisfiable"
    title = "Range not satisfiable"

    def __init__(self, total: int) -> None:
        super().__init__(
            f"the representation has {total} bytes",
            headers={"Content-Range": f"bytes */{total}"},
        )


class AccountWithoutKey(UnprocessableContent):
    slug = "account-without-key"


class InvalidDate(UnprocessableContent):
    slug = "invalid-date"


class InvalidField(UnprocessableContent):
    slug = "invalid-field"


class UnknownField(UnprocessableContent):
    slug = "unknown-field"


class PatientRequired(UnprocessableContent):
    slug = "patient-required"


class PatientMismatch(UnprocessableContent):
    slug = "patient-mismatch"


class DicomIncomplete(UnprocessableContent):
    slug = "dicom-incomplete"


class DicomInvalid(UnprocessableContent):
    slug = "dicom-invalid"


# -- 500, 503 -------------------------------------------------------------------------------


class IntegrityFailure(ProblemError):
    """A stored object or metadata row failed authentication: tampered, truncated or
    swapped at rest. 500 because the fault is ours (our storage), not an upstream's."""

    status = 500
    slug = "integrity-error"
    title = "Stored data failed its integrity check"


def integrity_failure(what: str, **context: str) -> IntegrityFailure:
    """Log (for the operator) and answer 500 ``integrity-error``."""
    log.error("integrity_error", what=what, **context)
    return IntegrityFailure(what)


class IdentityUnavailable(ServiceUnavailable):
    slug = "identity-unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(f"the identity service cannot be reached: {detail}", retry_after=10)


class BlobStoreUnavailable(ServiceUnavailable):
    slug = "blob-store-unavailable"


class UploadExpired(ServiceUnavailable):
    """An upload whose batch the sweep removed as dead (no heartbeat)."""

    slug = "upload-expired"
