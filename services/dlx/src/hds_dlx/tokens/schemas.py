"""The DLX wire format of api_info, token and tokentfa (DIN/TS 19455; see hds_dlx.schemas)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from hds_dlx.schemas import DlxModel

__all__ = [
    "AnswerFormat",
    "ApiInfo",
    "Question",
    "QuestionType",
    "TfaAnswer",
    "TfaAnswers",
    "TfaQuestion",
    "TfaQuestions",
]

QuestionType = Literal["PAT_BIRTH_DATE", "STUDY_DATE", "PASSWORD", "CUSTOM"]
AnswerFormat = Literal["DATE", "STRING"]


class ApiInfo(DlxModel):
    """General information about the API and version."""

    dlx_version: str = Field(alias="dlxVersion")
    vendor_information: str | SkipJsonSchema[None] = Field(default=None, alias="vendorInformation")
    api_base_path: str = Field(alias="apiBasePath")


class Question(DlxModel):
    """Question, which is localizable (ISO 639)."""

    text: str
    language: str | SkipJsonSchema[None] = None


class TfaQuestion(DlxModel):
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


class TfaQuestions(DlxModel):
    """Information about the API and list of tfa questions."""

    api_info: list[ApiInfo] = Field(default_factory=list, alias="apiInfo")
    tfa_question: list[TfaQuestion] = Field(default_factory=list, alias="tfaQuestion")


class TfaAnswer(DlxModel):
    """Tfa answer, referenced by its ID."""

    # Clients copy the standard's example, which writes ids and dates as JSON numbers.
    model_config = ConfigDict(coerce_numbers_to_str=True)

    question_id: str | SkipJsonSchema[None] = Field(default=None, alias="questionId")
    answer: str | SkipJsonSchema[None] = None


class TfaAnswers(DlxModel):
    """List of tfa answers."""

    tfa_answer: list[TfaAnswer] = Field(default_factory=list, alias="tfaAnswer")
