"""The way in: the questions, reading the answers, the public base path, the token."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

from hds_dlx.clients.auth import AuthClient
from hds_dlx.clients.codes import CodesClient
from hds_dlx.clients.schemas import CodeValidation
from hds_dlx.config import API_PREFIX, Settings
from hds_dlx.dates import parse_date
from hds_dlx.errors import TfaFailed
from hds_dlx.tokens.schemas import (
    ApiInfo,
    Question,
    TfaAnswers,
    TfaQuestion,
    TfaQuestions,
)

__all__ = [
    "BIRTH_DATE_QUESTION_ID",
    "DLX_VERSION",
    "MAX_CODE_LENGTH",
    "api_base_path",
    "api_info",
    "birth_date_answer",
    "issue_token",
    "settings_api_info",
    "tfa_questions",
    "token_ttl",
]

DLX_VERSION = "v1"
BIRTH_DATE_QUESTION_ID = "1"
# codes accepts at most 64 characters; longer values are wrong without asking it.
MAX_CODE_LENGTH = 64

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


def api_info(*, base_path: str, vendor_information: str) -> ApiInfo:
    return ApiInfo(
        dlx_version=DLX_VERSION, vendor_information=vendor_information, api_base_path=base_path
    )


def settings_api_info(settings: Settings) -> ApiInfo:
    """``api_info`` as configured (never from the request, see :func:`api_base_path`)."""
    return api_info(
        base_path=api_base_path(
            public_base_url=settings.suite.public_base_url, override=settings.public_base_path
        ),
        vendor_information=settings.vendor_information,
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
    return parse_date(given[0].strip())


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


def token_ttl(configured_seconds: int, validation: CodeValidation) -> int:
    """The configured lifetime, but never beyond the code's or its grant's expiry."""
    ttl = configured_seconds
    now = dt.datetime.now(dt.UTC)
    for expiry in (validation.expires_at, validation.code_expires_at):
        if expiry is not None:
            if expiry.tzinfo is None:
                expiry = expiry.replace(tzinfo=dt.UTC)
            ttl = min(ttl, int((expiry - now).total_seconds()))
    return max(1, ttl)


async def issue_token(
    codes: CodesClient,
    auth: AuthClient,
    *,
    code: str,
    answers: TfaAnswers,
    client: str,
    ttl_seconds: int,
) -> str:
    """The DLX JWT for a code and its answers: 401 for a wrong or unreadable answer or a
    value no code can have (without asking codes), else what codes decides."""
    birth_date = birth_date_answer(answers)
    if birth_date is None:
        raise TfaFailed("Answer questionId 1 with the birth date as YYYYMMDD.")
    if not code.strip() or len(code) > MAX_CODE_LENGTH:
        raise TfaFailed()
    validation = await codes.validate(code=code, birth_date=birth_date, client=client)
    return await auth.mint_dlx_token(validation, ttl_seconds=token_ttl(ttl_seconds, validation))
