"""The problem types of the identity service.

Each class carries its slug and title; its status comes from its base in
:mod:`hds_common.errors`. Routes raise them and document them with
``problem_responses(...)``. A class with a fixed message gives it as the default detail,
so every raise site says the same.
"""

from __future__ import annotations

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


class EmailTaken(
    Conflict,
    slug="email-taken",
    detail="An account with this e-mail address exists already.",
):
    pass


class InstitutionOnly(BadRequest, slug="institution-only", detail=INSTITUTION_ONLY_DETAIL):
    """A default code validity given for an account that is not an institution."""


class InstitutionOnlySetting(Forbidden, slug="institution-only", detail=INSTITUTION_ONLY_DETAIL):
    """The same refusal when an account changes its own settings: it may not (403)."""


class InvalidSetting(BadRequest, slug="invalid-setting"):
    pass


class AccountNotFound(NotFound, slug="account-not-found", detail="No such account."):
    pass


class AdminOnly(Forbidden, slug="admin-only", detail="This route is for administrators."):
    pass


# -- activation ----------------------------------------------------------------------


class ActivationTokenInvalid(
    BadRequest,
    slug="activation-token-invalid",
    title="Invalid activation link",
    detail="This activation link is not valid.",
):
    pass


class ActivationTokenUsed(
    Conflict,
    slug="activation-token-used",
    title="Activation link used",
    detail="This activation link has been used already.",
):
    pass


class ActivationTokenExpired(
    BadRequest, slug="activation-token-expired", title="Activation link expired"
):
    pass


# -- sessions ------------------------------------------------------------------------


class InvalidCredentials(
    Unauthorized,
    slug="invalid-credentials",
    title="Invalid credentials",
    detail=(
        "The e-mail address or the password is wrong, or the account has not been "
        "activated yet (see the activation mail, or ask for a new one)."
    ),
):
    """One answer for an unknown address, a wrong password and an account never
    activated."""


class InvalidRefreshToken(
    Unauthorized,
    slug="invalid-refresh-token",
    title="Invalid refresh token",
    detail="The refresh token is not valid.",
):
    pass


class AccountDisabled(Forbidden, slug="account-disabled"):
    pass


class TooManyAttempts(TooManyRequests, slug="too-many-attempts"):
    pass


# -- passwords -----------------------------------------------------------------------


class InvalidRecoveryCode(
    Unauthorized,
    slug="invalid-recovery-code",
    title="Invalid recovery code",
    detail="The e-mail address or the recovery code is wrong.",
):
    pass


class InvalidPassword(Forbidden, slug="invalid-password"):
    pass


class PasswordTooShort(UnprocessableContent, slug="password-too-short", title="Password too short"):
    pass


class PasswordTooLong(UnprocessableContent, slug="password-too-long", title="Password too long"):
    pass


class PasswordTooCommon(
    UnprocessableContent, slug="password-too-common", title="Password too common"
):
    pass


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


class InvitationPending(Conflict, slug="invitation-pending", title="Invitation pending"):
    pass


class InvitationAlreadyAccepted(Conflict, slug="invitation-accepted", title="Invitation accepted"):
    pass


class InvitationRevoked(Conflict, slug="invitation-revoked", title="Invitation revoked"):
    pass


class InvitationNotFound(NotFound, slug="invitation-not-found"):
    pass


class InvitationInvalid(
    BadRequest,
    slug="invitation-invalid",
    title="Invalid invitation link",
    detail="This invitation link is not valid.",
):
    pass


class InvitationUsed(
    Conflict,
    slug="invitation-used",
    title="Invitation used",
    detail="This invitation has been accepted already.",
):
    pass


class InvitationExpired(BadRequest, slug="invitation-expired", title="Invitation expired"):
    pass


# -- other services and the mail server ----------------------------------------------


class TtlOutOfRange(UnprocessableContent, slug="ttl-out-of-range"):
    pass


class StorageUnavailable(
    ServiceUnavailable,
    slug="storage-unavailable",
    detail="the storage service cannot hold the session's key right now; try again",
):
    pass


class MailFailed(BadGateway, slug="mail-failed"):
    pass
