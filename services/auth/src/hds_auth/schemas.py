"""Request and response bodies of the identity service."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from hds_auth.passwords import MAX_PASSWORD_LENGTH

Role = Literal["patient", "referrer", "institution", "admin"]
SelfServiceRole = Literal["patient", "referrer"]
DeletionMode = Literal["automatic", "manual"]

# Names, addresses and mail subjects are stored (PostgreSQL text cannot hold NUL) or go
# into mail headers, where any line break (CR, LF, NEL, U+2028, ...) would end the
# header: no control characters and no line separators.
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
_NOT_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _single_line(value: str) -> str:
    if _NOT_SINGLE_LINE.search(value):
        raise ValueError("must not contain control characters (NUL, line breaks, tabs)")
    return value


SingleLine = Annotated[
    str, AfterValidator(_single_line), Field(json_schema_extra={"pattern": SINGLE_LINE_PATTERN})
]
# The largest value of the BIGINT column.
MAX_QUOTA_BYTES = 2**63 - 1

Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
CodeValidityDays = Annotated[int, Field(ge=30, le=90)]
DisplayName = Annotated[SingleLine, Field(min_length=1, max_length=200)]
EmailText = Annotated[SingleLine, Field(min_length=1, max_length=320)]
QuotaBytes = Annotated[int, Field(ge=0, le=MAX_QUOTA_BYTES)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- registration and activation -----------------------------------------------------


class RegisterRequest(StrictModel):
    email: EmailStr
    password: Password
    role: SelfServiceRole = "patient"
    name: DisplayName | None = None


class AccountCreated(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    name: str | None
    activated: bool
    activation_mail_sent: bool
    recovery_code: str = Field(
        description="Shown exactly once: the only way to reset a forgotten password "
        "without losing data. Not stored anywhere in readable form."
    )


class ActivateRequest(StrictModel):
    token: str = Field(min_length=1, max_length=200)


class Activated(BaseModel):
    status: Literal["activated"] = "activated"
    account_id: uuid.UUID
    email: str


class InvitationToken(StrictModel):
    token: str = Field(min_length=1, max_length=200)


class InvitationOffer(BaseModel):
    """What the invitee sees before accepting."""

    email: str
    role: Role
    name: str | None
    expires_at: dt.datetime


class InvitationAcceptRequest(StrictModel):
    token: str = Field(min_length=1, max_length=200)
    password: Password


class InvitationAccepted(BaseModel):
    account_id: uuid.UUID
    email: str
    role: Role
    name: str | None
    recovery_code: str = Field(
        description="Shown exactly once, here: the only way to reset a forgotten password "
        "without losing data. Not stored anywhere in readable form."
    )


class ResendActivationRequest(StrictModel):
    email: EmailText


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"


# -- sessions ------------------------------------------------------------------------


class LoginRequest(StrictModel):
    # Not validated as an address: an unknown or odd address must get the same answer
    # as a wrong password.
    email: EmailText
    password: Password


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


class RefreshRequest(StrictModel):
    refresh_token: str = Field(min_length=1, max_length=200)


# -- passwords -----------------------------------------------------------------------


class PasswordResetRequest(StrictModel):
    email: EmailText
    recovery_code: str = Field(min_length=1, max_length=100)
    new_password: Password


class PasswordResetDone(BaseModel):
    recovery_code: str = Field(description="The new recovery code; the old one is void.")


class PasswordChangeRequest(StrictModel):
    current_password: Password
    new_password: Password


# -- the account ---------------------------------------------------------------------


class AccountSettings(BaseModel):
    deletion_mode: DeletionMode
    notifications: bool
    accept_shares: bool


class InstitutionProfile(BaseModel):
    name: str | None
    default_code_validity_days: int


class Me(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    name: str | None
    created_at: dt.datetime
    public_key: str = Field(description="X25519 public key, base64url")
    settings: AccountSettings
    quota_bytes: int | None = Field(description="null: no quota (institutions by default)")
    used_bytes: int | None = Field(description="null when the storage service is unreachable")
    institution: InstitutionProfile | None


class SettingsUpdate(StrictModel):
    deletion_mode: DeletionMode | None = None
    notifications: bool | None = None
    accept_shares: bool | None = None
    name: DisplayName | None = None
    default_code_validity_days: CodeValidityDays | None = None


class PublicKey(BaseModel):
    account_id: uuid.UUID
    role: Role
    name: str | None
    public_key: str = Field(description="X25519 public key, base64url")


# -- administration ------------------------------------------------------------------


class InvitationCreate(StrictModel):
    """An account offered to the holder of ``email``; no password: the invitee chooses it."""

    email: EmailStr
    role: Role
    name: DisplayName | None = None
    quota_bytes: QuotaBytes | None = None
    default_code_validity_days: CodeValidityDays | None = None


InvitationState = Literal["pending", "accepted", "expired", "revoked"]


class Invitation(BaseModel):
    """An invitation as administrators see it: that it exists and whether it was
    accepted, never anything that would open the account."""

    id: uuid.UUID
    email: str
    role: Role
    name: str | None
    quota_bytes: int | None
    default_code_validity_days: int | None
    state: InvitationState
    created_at: dt.datetime
    sent_at: dt.datetime
    expires_at: dt.datetime
    accepted_at: dt.datetime | None
    account_id: uuid.UUID | None = Field(description="The account, once accepted")
    mail_sent: bool | None = Field(
        default=None,
        description="After creating or resending: whether the mail server took the mail",
    )


class AdminAccountUpdate(StrictModel):
    """Only the fields sent are changed; ``quota_bytes: null`` restores the default."""

    role: Role | None = None
    name: DisplayName | None = None
    activated: bool | None = None
    disabled: bool | None = None
    quota_bytes: QuotaBytes | None = None
    default_code_validity_days: CodeValidityDays | None = None


class AdminAccount(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    name: str | None
    activated: bool
    disabled: bool
    created_at: dt.datetime
    settings: AccountSettings
    quota_bytes: int | None = Field(description="null: no quota (institutions by default)")
    quota_is_default: bool
    default_code_validity_days: int | None


class SigningKeyRotated(BaseModel):
    kid: str
    published_kids: list[str]


# -- internal ------------------------------------------------------------------------


class DlxTokenRequest(StrictModel):
    package_id: str = Field(min_length=1, max_length=100)
    code_id: str = Field(min_length=1, max_length=100)
    grant: str = Field(min_length=1, max_length=4096)
    key_session_id: str = Field(
        pattern=r"^[0-9a-f]{32}$", description="The package key session the grant names"
    )
    ttl_seconds: int | None = Field(default=None, ge=1)


class DlxToken(BaseModel):
    token: str
    expires_in: int


class InternalAccount(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    public_key: str
    quota_bytes: int | None = Field(description="null: no quota (institutions by default)")
    deletion_mode: DeletionMode
    # Activated and not disabled: only such an account can receive shares.
    active: bool
    notifications: bool
    accept_shares: bool
    name: str | None
    # Institutions only (null for everyone else).
    default_code_validity_days: int | None


class NotificationRequest(StrictModel):
    account_id: uuid.UUID
    subject: Annotated[SingleLine, Field(min_length=1, max_length=200)]
    text: str = Field(min_length=1, max_length=20_000)


class NotificationResult(BaseModel):
    sent: bool
