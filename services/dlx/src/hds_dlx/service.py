"""DLX rules: the questions, reading the answers, the public base path, the item mapping."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

from hds_dlx.schemas import (
    ApiInfo,
    DataItem,
    Question,
    StorageItem,
    TfaAnswers,
    TfaQuestion,
    TfaQuestions,
)

__all__ = [
    "API_PREFIX",
    "BIRTH_DATE_QUESTION_ID",
    "DLX_VERSION",
    "api_base_path",
    "api_info",
    "birth_date_answer",
    "data_item",
    "dicom_date",
    "download_filename",
    "tfa_questions",
]

API_PREFIX = "/dlx/v1"
DLX_VERSION = "v1"
BIRTH_DATE_QUESTION_ID = "1"
STUDY_MIME_TYPE = "application/zip"
DOCUMENT_MIME_TYPE = "application/pdf"

# Every code, known or not, is asked exactly this: the answer to /token must not depend
# on the code, so /token never looks it up (no lookup, no timing difference).
_BIRTH_DATE_QUESTION = TfaQuestion(
    question=[
        Question(text="Wann ist Ihr Geburtsdatum?", language="de"),
        Question(text="What is your date of birth?", language="en"),
    ],
    question_id=BIRTH_DATE_QUESTION_ID,
    question_type="PAT_BIRTH_DATE",
    answer_format="DATE",
)

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_-]+")


def api_info(*, base_path: str, vendor_information: str) -> ApiInfo:
    return ApiInfo(
        dlx_version=DLX_VERSION, vendor_information=vendor_information, api_base_path=base_path
    )


def tfa_questions(info: ApiInfo) -> TfaQuestions:
    return TfaQuestions(api_info=[info], tfa_question=[_BIRTH_DATE_QUESTION])


def birth_date_answer(answers: TfaAnswers) -> dt.date | None:
    """The answered birth date (``YYYYMMDD`` per the standard; ``YYYY-MM-DD`` tolerated),
    or None when it is missing, given twice, or not a calendar date."""
    given = [
        answer.answer
        for answer in answers.tfa_answer
        if (answer.question_id or "").strip() == BIRTH_DATE_QUESTION_ID
    ]
    if len(given) != 1 or given[0] is None:
        return None
    return _parse_date(given[0].strip())


def _parse_date(value: str) -> dt.date | None:
    if re.fullmatch(r"[0-9]{8}", value):
        digits = value
    elif re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        digits = value.replace("-", "")
    else:
        return None
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def dicom_date(value: str | None) -> dt.date | None:
    """A DICOM DA (``YYYYMMDD``) as a date; None for empty or partial values."""
    return _parse_date(value.strip()) if value else None


def api_base_path(*, public_base_url: str, override: str | None) -> str:
    """The absolute URL of ``/dlx/v1`` as clients reach it, from configuration only.

    ``override`` (``HDS_DLX_PUBLIC_BASE_PATH``) wins when it is an absolute URL; a path
    override replaces the path under the origin of ``public_base_url``
    (``HDS_PUBLIC_BASE_URL``); otherwise ``/dlx/v1`` follows the public base URL. Nothing
    a client sends (``Host``, ``X-Forwarded-*``) goes into it: a forged header would make
    the answer point a viewer, and the patient's birth date, at the forger's server.
    """
    if override and override.startswith(("http://", "https://")):
        return override
    public = urlsplit(public_base_url.rstrip("/"))
    path = override or (public.path + API_PREFIX)
    return f"{public.scheme}://{public.netloc}{path}"


def data_item(item: StorageItem) -> DataItem | None:
    """The DLX ``dataItem`` of a storage item; None for kinds DLX cannot deliver."""
    if item.kind == "study":
        mime_type = STUDY_MIME_TYPE
    elif item.kind == "document":
        mime_type = item.mime_type or DOCUMENT_MIME_TYPE
    else:
        return None
    modalities = item.modalities
    if isinstance(modalities, list):
        # Multiple values as DICOM writes them (ModalitiesInStudy, 0008,0061).
        modalities = "\\".join(m for m in modalities if m)
    return DataItem(
        id=item.id,
        mime_type=mime_type,
        description=item.description or "",
        study_instance_uid=item.study_instance_uid or None,
        date=dicom_date(item.date),
        modalities=modalities or None,
        patients_name=item.patient_name or None,
        patients_birthdate=dicom_date(item.patient_birth_date),
        patients_sex=item.patient_sex or None,
        file_count=item.file_count,
    )


def download_filename(item: StorageItem | None) -> str:
    """An attachment name that is safe on every file system and in a quoted header."""
    if item is None:
        return "dlx-download.zip"
    safe_id = _UNSAFE_FILENAME.sub("_", item.id).strip("_")[:64] or "item"
    if item.kind == "study":
        return f"study-{safe_id}.zip"
    return f"report-{safe_id}.pdf"
