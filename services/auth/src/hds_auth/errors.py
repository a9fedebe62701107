"""The problem types of the identity service.

Each class carries its slug and title; its status comes from its base in
:mod:`hds_common.errors`. Routes raise them and document them with
``problem_responses(...)``. A class with a fixed message gives it as the default detail,
so every raise site says the same.
"""

from __future__ import annotations

from typing import Any

from hds_common.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    UnprocessableContent,
)

__all__ = [
    "PASSWORD_POLICY_PROBLEMS",
    "AccountDisabled",
    "AccountNotFound",
    "ActivationTokenExpired",
    "ActivationTokenInvalid",
    "ActivationTokenUsed",
    "AdminOnly",
    "EmailTaken",
    "InstitutionOnly",
    "InstitutionOnlySetting",
    "InvalidCredentials",
    "InvalidPassword",
    "InvalidRecoveryCode",
    "InvalidRefreshToken",
    "InvalidSetting",
    "InvitationAlreadyAccepted",
    "InvitationExpired",
    "InvitationInvalid",
    "InvitationNotFound",
    "InvitationPending",
    "InvitationRevoked",
    "InvitationUsed",
    "MailFailed",
    "PasswordTooCommon",
    "PasswordTooLong",
    "PasswordTooShort",
    "StorageUnavailable",
    "TooManyAttempts",
    "TtlOutOfRange",
]

INSTITUTION_ONLY_DETAIL = "Only institutions have a default code validity."


# -- accounts ------------------------------------------------------------------------


class EmailTaken(Conflict):
    slug = "email-taken"

    def __init__(
        self,
        detail: str = "An account with this e-mail address exists already.",
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)


class InstitutionOnly(BadRequest):
    """A default code validity given for an account that is not an institution."""

    slug = "institution-only"

    def __init__(self, detail: str = INSTITUTION_ONLY_DETAIL, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class InstitutionOnlySetting(Forbidden):
    """The same refusal when an account changes its own settings: it may not (403)."""

    slug = "institution-only"

    def __init__(self, detail: str = INSTITUTION_ONLY_DETAIL, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class InvalidSetting(BadRequest):
    slug = "invalid-setting"


class AccountNotFound(NotFound):
    slug = "account-not-found"

    def __init__(self, detail: str = "No such account.", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class AdminOnly(Forbidden):
    slug = "admin-only"

    def __init__(self, detail: str = "This route is for administrators.", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


# -- activation ----------------------------------------------------------------------


class ActivationTokenInvalid(BadRequest):
    slug = "activation-token-invalid"
    title = "Invalid activation link"

    def __init__(self, detail: str = "This activation link is not valid.", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class ActivationTokenUsed(Conflict):
    slug = "activation-token-used"
    title = "Activation link used"

    def __init__(
        self, detail: str = "This activation link has been used already.", **kwargs: Any
    ) -> None:
        super().__init__(detail, **kwargs)


class ActivationTokenExpired(BadRequest):
    slug = "activation-token-expired"
    title = "Activation link expired"


# -- sessions ------------------------------------------------------------------------


class InvalidCredentials(Unauthorized):
    """One answer for an unknown address, a wrong password and an account never
    activated."""

    slug = "invalid-credentials"
    title = "Invalid credentials"

    def __init__(
        self,
        detail: str = (
            "The e-mail address or the password is wrong, or the account has not been "
            "activated yet (see the activation mail, or ask for a new one)."
        ),
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)


class InvalidRefreshToken(Unauthorized):
    slug = "invalid-refresh-token"
    title = "Invalid refresh token"

    def __init__(self, detail: str = "The refresh token is not valid.", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class AccountDisabled(Forbidden):
    slug = "account-disabled"


class TooManyAttempts(TooManyRequests):
    slug = "too-many-attempts"


# -- passwords -----------------------------------------------------------------------


class InvalidRecoveryCode(Unauthorized):
    slug = "invalid-recovery-code"
    title = "Invalid recovery code"

    def __init__(
        self,
        detail: str = "The e-mail address or the recovery code is wrong.",
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)


class InvalidPassword(Forbidden):
    slug = "invalid-password"


class PasswordTooShort(UnprocessableContent):
    slug = "password-too-short"
    title = "Password too short"


class PasswordTooLong(UnprocessableContent):
    slug = "password-too-long"
    title = "Password too long"


class PasswordTooCommon(UnprocessableContent):
    slug = "password-too-common"
    title = "Password too common"


# What a route that takes a new password answers with 422: the request's own validation
# (documented here because naming any 422 replaces FastAPI's default entry) and the
# password rules.
PASSWORD_POLICY_PROBLEMS = (
    UnprocessableContent,
    PasswordTooShort,
    PasswordTooLong,
    PasswordTooCommon,
)


# -- invitations ---------------------------------------------------------------------


class InvitationPending(Conflict):
    slug = "invitation-pending"
    title = "Invitation pending"


class InvitationAlreadyAccepted(Conflict):
    slug = "invitation-accepted"
    title = "Invitation accepted"


class InvitationRevoked(Conflict):
    slug = "invitation-revoked"
    title = "Invitation revoked"


class InvitationNotFound(NotFound):
    slug = "invitation-not-found"


class InvitationInvalid(BadRequest):
    slug = "invitation-invalid"
    title = "Invalid invitation link"

    def __init__(self, detail: str = "This invitation link is not valid.", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)


class InvitationUsed(Conflict):
    slug = "invitation-used"
    title = "Invitation used"

    def __init__(
        self, detail: str = "This invitation has been accepted already.", **kwargs: Any
    ) -> None:
        super().__init__(detail, **kwargs)


class InvitationExpired(BadRequest):
    slug = "invitation-expired"
    title = "Invitation expired"


# -- other services and the mail server ----------------------------------------------


class TtlOutOfRange(UnprocessableContent):
    slug = "ttl-out-of-range"


class StorageUnavailable(ServiceUnavailable):
    slug = "storage-unavailable"

    def __init__(
        self,
        detail: str = "the storage service cannot hold the session's key right now; try again",
        **kwargs: Any,
    ) -> None:
        super().__init__(detail, **kwargs)


class MailFailed(BadGateway):
    slug = "mail-failed"
