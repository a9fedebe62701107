"""Request and response bodies of the storage service."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Ids in paths are looked up in the database (PostgreSQL text cannot hold NUL) and sent
# to the identity service in URL paths: no control characters.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"
ID_MAX_LENGTH = 64

ItemKind = Literal["study", "document"]
ShareKind = Literal["study", "document", "package"]
PackageState = Literal["open", "complete"]


# -- shared pieces --------------------------------------------------------------------------


class PatientPublic(BaseModel):
    id: str = Field(description="Opaque id of the patient record (one per package)")
    package_id: str
    patient_id: str = Field(description="PatientID (0010,0020) as sent by the institution")
    name: str = Field(description="PatientName (0010,0010), DICOM person name format")
    birth_date: dt.date | None
    sex: str


# -- ingest ---------------------------------------------------------------------------------


class PackagePublic(BaseModel):
    id: str
    state: PackageState
    institution_id: str
    created_at: dt.datetime
    last_activity_at: dt.datetime
    completed_at: dt.datetime | None
    patient: PatientPublic | None = None
    studies: int = 0
    documents: int = 0
    size: int = Field(0, description="Plaintext bytes of all objects")


class InstanceStored(BaseModel):
    id: str
    sop_instance_uid: str
    study_id: str
    series_id: str
    size: int
    sha256: str
    status: Literal["created", "existing"] = Field(
        description="existing: the same SOP Instance UID with the same bytes was stored before"
    )


class InstancesUploaded(BaseModel):
    package_id: str
    instances: list[InstanceStored]


class DocumentStored(BaseModel):
    id: str
    size: int
    sha256: str
    status: Literal["created", "existing"]


class DocumentsUploaded(BaseModel):
    package_id: str
    documents: list[DocumentStored]


# -- holdings -------------------------------------------------------------------------------


class InstancePublic(BaseModel):
    id: str = Field(description="Object id: GET /storage/v1/objects/{id}")
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    instance_number: int | None
    size: int
    crc32: int
    sha256: str


class SeriesPublic(BaseModel):
    id: str
    series_instance_uid: str
    modality: str
    number: int | None
    description: str
    instances: list[InstancePublic]


class StudyPublic(BaseModel):
    id: str = Field(description="Item id of the study (DLX dataItem id)")
    package_id: str
    study_instance_uid: str
    patient: PatientPublic
    date: dt.date | None
    description: str
    accession_number: str
    modalities: list[str]
    series_count: int
    instance_count: int
    size: int
    added_at: dt.datetime


class StudyDetail(StudyPublic):
    series: list[SeriesPublic]


class DocumentPublic(BaseModel):
    id: str = Field(description="Item id and object id of the document")
    package_id: str
    patient: PatientPublic
    title: str
    date: dt.date | None
    mime_type: str = "application/pdf"
    size: int
    sha256: str
    added_at: dt.datetime


class PatientHoldings(PatientPublic):
    study_ids: list[str]
    document_ids: list[str]


class UsagePublic(BaseModel):
    used_bytes: int
    reserved_bytes: int
    quota_bytes: int | None = Field(description="null: no quota (institutions by default)")
    deletion_mode: Literal["automatic", "manual"]


# -- shares ---------------------------------------------------------------------------------


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: str = Field(
        min_length=1,
        max_length=320,
        pattern=ID_PATTERN,
        description="E-mail address or account id of the account to share with",
    )


class SharePublic(BaseModel):
    id: str
    package_id: str
    item_kind: ShareKind = Field(description="package: an institution's whole delivery")
    item_id: str = Field(description="The study or document; the package id for a package")
    from_account_id: str = Field(description="The sharer")
    to_account_id: str = Field(description="The recipient")
    state: Literal["active", "waiting"] = Field(
        description="waiting: it did not fit the recipient's quota; nothing of the "
        "recipient was deleted for it. It waits until the recipient makes room and "
        "accepts it (POST /shares/{id}/accept, also tried after each deletion), or "
        "declines it (DELETE /shares/{id})"
    )
    size_bytes: int = Field(description="Bytes the share adds to the recipient's holdings")
    created_at: dt.datetime


class SharesPublic(BaseModel):
    outgoing: list[SharePublic] = Field(description="Shares the account gave, oldest first")
    incoming: list[SharePublic] = Field(description="Shares the account received")


# -- internal -------------------------------------------------------------------------------


class PackageKeyOut(BaseModel):
    package_key: str = Field(description="base64url package key")


class SlotImport(BaseModel):
    account_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    sealed_package_key: str = Field(
        min_length=1,
        max_length=4096,
        description="The package key sealed to this service (kind package, the package id)",
    )


# -- key sessions ---------------------------------------------------------------------------

SessionKind = Literal["user", "package"]
SESSION_ID_PATTERN = r"^[0-9a-f]{32}$"


class KeySessionStart(BaseModel):
    kind: SessionKind
    subject: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        description="What else ends the session: a refresh family id, an access code id",
    )
    sealed_key: str = Field(
        min_length=1, max_length=4096, description="The key sealed to this service"
    )
    expires_at: int = Field(description="Unix seconds; no later than the token's expiry")


class KeySessionStarted(BaseModel):
    session_id: str = Field(description="Goes into the token as the ksid claim")
    grant: str = Field(description="Session id and secret sealed to this service")
    expires_at: int


class KeySessionsEnd(BaseModel):
    kind: SessionKind
    subject: str = Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)
    tag: str | None = Field(
        default=None, min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN
    )
    keep_tag: str | None = Field(
        default=None, min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN
    )


class KeySessionsEnded(BaseModel):
    ended: int


class KeySessionLive(BaseModel):
    session_id: str


class SlotImported(BaseModel):
    package_id: str
    studies: int = Field(description="Studies of the package now in the account's holdings")
    documents: int = Field(description="Documents of the package now in the account's holdings")
    bytes: int = Field(description="Plaintext bytes newly counted against the account's quota")


class PackageStatus(BaseModel):
    id: str
    state: PackageState
    institution_id: str
    retry_after: int = Field(description="Seconds until asking again makes sense (0 if complete)")


class DataItem(BaseModel):
    """One DLX ``dataItem`` (a study as IHE PDI ZIP or a PDF document)."""

    id: str
    kind: ItemKind
    mime_type: str
    description: str
    study_instance_uid: str | None
    date: dt.date | None
    modalities: str | None = Field(description="Backslash separated, like ModalitiesInStudy")
    patient_name: str
    patient_birth_date: dt.date | None
    patient_sex: str
    file_count: int
    size: int


class RetentionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codes_valid_until: AwareDatetime = Field(description="Expiry of a code of the package")


class AccountUsage(BaseModel):
    used_bytes: int
    quota_bytes: int | None
