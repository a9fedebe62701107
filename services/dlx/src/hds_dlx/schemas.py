"""The DLX wire format (DIN/TS 19455) and the answers of the neighbouring services.

The public models carry the standard's field names as aliases and mirror its ``required``
lists exactly: a property the standard leaves optional is optional here as well, and is
left out of an answer (never sent as ``null``) when there is no value for it. Optional
fields are typed ``X | SkipJsonSchema[None]`` so that the published schema says ``X``, as
the standard does, while the model can still hold "no value".
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "ApiInfo",
    "CodeValidation",
    "ComebackLaterResponse",
    "DataItem",
    "DataItems",
    "MintedToken",
    "PackageStatus",
    "Problem",
    "Question",
    "StorageItem",
    "TfaAnswer",
    "TfaAnswers",
    "TfaQuestion",
    "TfaQuestions",
]

QuestionType = Literal["PAT_BIRTH_DATE", "STUDY_DATE", "PASSWORD", "CUSTOM"]
AnswerFormat = Literal["DATE", "STRING"]


class _DlxModel(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)


# --- public: DIN/TS 19455 ------------------------------------------------------------


class ApiInfo(_DlxModel):
    """General information about the API and version."""

    dlx_version: str = Field(alias="dlxVersion")
    vendor_information: str | SkipJsonSchema[None] = Field(default=None, alias="vendorInformation")
    api_base_path: str = Field(alias="apiBasePath")


class Question(_DlxModel):
    """Question, which is localizable (ISO 639)."""

    text: str
    language: str | SkipJsonSchema[None] = None


class TfaQuestion(_DlxModel):
    """Tfa question that must be answered by the user or an automated system."""

    question: list[Question] = Field(default_factory=list)
    question_id: str | SkipJsonSchema[None] = Field(default=None, alias="questionId")
    question_type: QuestionType | SkipJsonSchema[None] = Field(
        default=None,
        alias="questionType",
        description="PAT_BIRTH_DATE: Patient's Birth Date (0010,0030); STUDY_DATE: Study Date "
        "(0008,0020); PASSWORD: an OTP or TOTP; CUSTOM: any other value.",
    )
    answer_format: AnswerFormat | SkipJsonSchema[None] = Field(
        default=None,
        alias="answerFormat",
        description="DATE: a date formatted as YYYYMMDD; STRING: an arbitrary string.",
    )


class TfaQuestions(_DlxModel):
    """Information about the API and list of tfa questions."""

    api_info: list[ApiInfo] = Field(default_factory=list, alias="apiInfo")
    tfa_question: list[TfaQuestion] = Field(default_factory=list, alias="tfaQuestion")


class TfaAnswer(_DlxModel):
    """Tfa answer, referenced by its ID."""

    # Clients copy the standard's example, which writes ids and dates as JSON numbers.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    question_id: str | SkipJsonSchema[None] = Field(default=None, alias="questionId")
    answer: str | SkipJsonSchema[None] = None


class TfaAnswers(_DlxModel):
    """List of tfa answers."""

    tfa_answer: list[TfaAnswer] = Field(default_factory=list, alias="tfaAnswer")


class DataItem(_DlxModel):
    """One study (an IHE PDI ZIP) or one report (a PDF) the access code unlocks."""

    id: str
    mime_type: str = Field(alias="mimeType")
    description: str
    study_instance_uid: str | SkipJsonSchema[None] = Field(default=None, alias="studyInstanceUID")
    date: dt.date | SkipJsonSchema[None] = None
    modalities: str | SkipJsonSchema[None] = None
    patients_name: str | SkipJsonSchema[None] = Field(default=None, alias="patientsName")
    patients_birthdate: dt.date | SkipJsonSchema[None] = Field(
        default=None, alias="patientsBirthdate"
    )
    patients_sex: str | SkipJsonSchema[None] = Field(default=None, alias="patientsSex")
    file_count: int | SkipJsonSchema[None] = Field(default=None, alias="fileCount")


class DataItems(_DlxModel):
    """List of data items."""

    data_item: list[DataItem] = Field(default_factory=list, alias="dataItem")


class ComebackLaterResponse(_DlxModel):
    """The download is not possible yet; try again after ``timeOutInSeconds``."""

    time_out_in_seconds: Annotated[int, Field(ge=0)] | SkipJsonSchema[None] = Field(
        default=None, alias="timeOutInSeconds"
    )


class Problem(BaseModel):
    """RFC 9457 problem details (every error the standard does not define a body for)."""

    type: str
    title: str
    status: int
    detail: str | SkipJsonSchema[None] = None
    request_id: str | SkipJsonSchema[None] = None


# --- internal: answers of codes, auth and storage ----------------------------------------


class _Upstream(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CodeValidation(_Upstream):
    """codes ``POST /internal/v1/validate`` → 200."""

    code_id: str
    package_id: str
    grant: str
    key_session_id: str  # the package key session the grant names (the token's ksid)
    expires_at: dt.datetime | None = None  # of the key session
    code_expires_at: dt.datetime | None = None


class MintedToken(_Upstream):
    """auth ``POST /internal/v1/dlx-tokens``."""

    token: str
    expires_in: int


class PackageStatus(_Upstream):
    """storage ``GET /internal/v1/packages/{id}/status``."""

    state: str
    retry_after: int | None = None


class StorageItem(_Upstream):
    """One element of storage ``GET /internal/v1/packages/{id}/items``."""

    id: str
    kind: str
    mime_type: str | None = None
    description: str | None = None
    study_instance_uid: str | None = None
    date: str | None = None
    modalities: str | list[str] | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    file_count: int | None = None
    size: int | None = None
