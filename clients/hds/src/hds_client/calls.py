"""The suite's HTTP API as calls: what to send for each operation, and how to read its
answer. The async and the sync client (:mod:`hds_client.api`) send the same calls."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from hds_client.errors import ApiError, ClientError

__all__ = [
    "Call",
    "DlxItem",
    "Download",
    "IssuedCode",
    "PackageInfo",
    "TokenPair",
    "complete_package",
    "create_package",
    "dlx_download",
    "dlx_download_all",
    "dlx_list",
    "dlx_token",
    "issue_code",
    "login",
    "package",
    "upload_document",
    "upload_instance",
    "upload_instances",
]

T = TypeVar("T")
Body = bytes | Iterable[bytes] | AsyncIterable[bytes]


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str | None
    expires_in: int | None


@dataclass(frozen=True)
class PackageInfo:
    id: str
    state: str
    # The package's patient once it has one (from its first DICOM file or document).
    patient: dict[str, Any] | None


@dataclass(frozen=True)
class IssuedCode:
    """A new access code; shown only now, the suite keeps only a keyed hash of it."""

    id: str
    package_id: str
    code: str
    link: str
    expires_at: str
    validity_days: int | None
    qr_svg: str
    qr_png: str
    sheet_pdf: str


@dataclass(frozen=True)
class DlxItem:
    """An entry of a DLX ``list``: a study or a document (all of it in ``fields``)."""

    id: str
    mime_type: str
    study_instance_uid: str | None
    fields: dict[str, Any]


@dataclass(frozen=True)
class Download:
    status: int
    headers: httpx.Headers
    content: bytes


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API: ``action`` names it in error messages."""

    action: str
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    options: dict[str, Any] = field(default_factory=dict)
    # Answers other than 2xx that ``read`` takes instead of raising (ranges: 206 is 2xx).
    accepted: frozenset[int] = frozenset()

    def answer(self, response: httpx.Response) -> T:
        if response.status_code >= 400 and response.status_code not in self.accepted:
            raise ApiError.of(response, self.action)
        return self.read(response)


def _json(action: str) -> Callable[[httpx.Response], dict[str, Any]]:
    def read(response: httpx.Response) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            raise ClientError(f"{action}: the answer is not JSON") from None
        return body if isinstance(body, dict) else {"items": body}

    return read


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _package_path(package_id: str, tail: str = "") -> str:
    return f"/storage/v1/packages/{quote(package_id, safe='')}{tail}"


def login(email: str, password: str) -> Call[TokenPair]:
    def read(response: httpx.Response) -> TokenPair:
        body = _json("login")(response)
        token = body.get("access_token") or body.get("token")
        if not isinstance(token, str):
            raise ClientError("login: the answer carries no access token")
        refresh = body.get("refresh_token")
        expires_in = body.get("expires_in")
        return TokenPair(
            access_token=token,
            refresh_token=refresh if isinstance(refresh, str) else None,
            expires_in=expires_in if isinstance(expires_in, int) else None,
        )

    return Call(
        "login", "POST", "/auth/v1/login", read, {"json": {"email": email, "password": password}}
    )


def _package_info(action: str) -> Callable[[httpx.Response], PackageInfo]:
    def read(response: httpx.Response) -> PackageInfo:
        body = _json(action)(response)
        package_id = str(body.get("id", ""))
        if not package_id:
            raise ClientError(f"{action}: the answer carries no package id")
        patient = body.get("patient")
        return PackageInfo(
            id=package_id,
            state=str(body.get("state", "")),
            patient=patient if isinstance(patient, dict) else None,
        )

    return read


def create_package(token: str) -> Call[PackageInfo]:
    action = "package creation"
    return Call(
        action,
        "POST",
        "/storage/v1/packages",
        _package_info(action),
        {"json": {}, "headers": _bearer(token)},
    )


def package(token: str, package_id: str) -> Call[PackageInfo]:
    action = "package lookup"
    return Call(
        action, "GET", _package_path(package_id), _package_info(action), {"headers": _bearer(token)}
    )


def upload_instance(
    token: str, package_id: str, body: Body, *, length: int | None, name: str = "instance"
) -> Call[dict[str, Any]]:
    """One DICOM Part 10 file as ``application/dicom``; ``body`` may stream, ``length``
    lets the server check the upload (None: a streamed body goes chunked)."""
    action = f"upload of {name}"
    headers = {**_bearer(token), "Content-Type": "application/dicom"}
    if length is not None:
        headers["Content-Length"] = str(length)
    return Call(
        action,
        "POST",
        _package_path(package_id, "/instances"),
        _json(action),
        {"content": body, "headers": headers},
    )


def upload_instances(
    token: str, package_id: str, files: list[tuple[str, bytes]]
) -> Call[dict[str, Any]]:
    """Several DICOM files in one multipart request (``(file name, content)`` each)."""
    action = f"upload of {len(files)} instance(s)"
    parts = [("file", (name, data, "application/dicom")) for name, data in files]
    return Call(
        action,
        "POST",
        _package_path(package_id, "/instances"),
        _json(action),
        {"files": parts, "headers": _bearer(token)},
    )


def upload_document(
    token: str, package_id: str, name: str, file: IO[bytes] | bytes, patient: dict[str, str]
) -> Call[dict[str, Any]]:
    """A PDF as multipart/form-data with the patient it belongs to (``patient_id``, and
    ``patient_name`` / ``patient_birth_date`` while the package has no patient yet)."""
    action = f"upload of {name}"
    return Call(
        action,
        "POST",
        _package_path(package_id, "/documents"),
        _json(action),
        {
            "data": patient,
            "files": {"file": (name, file, "application/pdf")},
            "headers": _bearer(token),
        },
    )


def complete_package(token: str, package_id: str) -> Call[dict[str, Any]]:
    action = "package completion"
    return Call(
        action,
        "POST",
        _package_path(package_id, "/complete"),
        _json(action),
        {"headers": _bearer(token)},
    )


def issue_code(
    token: str, package_id: str, birth_date: dt.date, *, validity_days: int | None = None
) -> Call[IssuedCode]:
    action = "code issue"
    request: dict[str, Any] = {"package_id": package_id, "birth_date": f"{birth_date:%Y%m%d}"}
    if validity_days is not None:
        request["validity_days"] = validity_days

    def read(response: httpx.Response) -> IssuedCode:
        body = _json(action)(response)
        try:
            days = body.get("validity_days")
            return IssuedCode(
                id=str(body["id"]),
                package_id=str(body.get("package_id", package_id)),
                code=str(body["code"]),
                link=str(body["link"]),
                expires_at=str(body["expires_at"]),
                validity_days=days if isinstance(days, int) else None,
                qr_svg=str(body.get("qr_svg", "")),
                qr_png=str(body.get("qr_png", "")),
                sheet_pdf=str(body.get("sheet_pdf", "")),
            )
        except KeyError as exc:
            raise ClientError(f"{action}: the answer lacks {exc}") from None

    return Call(
        action, "POST", "/codes/v1/codes", read, {"json": request, "headers": _bearer(token)}
    )


def dlx_token(code: str, birth_date: str) -> Call[str]:
    """A DLX token for an access code and the patient's birth date (the DLX two-factor
    answer): a validation of the code."""
    return Call(
        "code validation",
        "POST",
        f"/dlx/v1/tokentfa/{quote(code, safe='')}",
        lambda response: response.text,
        {"json": {"tfaAnswer": [{"questionId": "1", "answer": birth_date}]}},
    )


def dlx_list(token: str) -> Call[list[DlxItem]]:
    action = "DLX list"

    def read(response: httpx.Response) -> list[DlxItem]:
        items = _json(action)(response).get("dataItem")
        if not isinstance(items, list):
            raise ClientError(f"{action}: the answer carries no dataItem")
        return [
            DlxItem(
                id=str(item["id"]),
                mime_type=str(item.get("mimeType", "")),
                study_instance_uid=item.get("studyInstanceUID") or None,
                fields=item,
            )
            for item in items
            if isinstance(item, dict) and "id" in item
        ]

    return Call(action, "GET", "/dlx/v1/list", read, {"headers": _bearer(token)})


def _download(response: httpx.Response) -> Download:
    return Download(response.status_code, response.headers, response.content)


def dlx_download(
    token: str, item_id: str, *, headers: dict[str, str] | None = None
) -> Call[Download]:
    """One study (IHE PDI ZIP) or document; ``headers`` e.g. ``Range``."""
    return Call(
        "DLX download",
        "GET",
        f"/dlx/v1/download/{quote(item_id, safe='')}",
        _download,
        {"headers": {**_bearer(token), **(headers or {})}},
    )


def dlx_download_all(token: str, *, headers: dict[str, str] | None = None) -> Call[Download]:
    """Every item of the package as one IHE PDI ZIP; ``headers`` e.g. ``Range``."""
    return Call(
        "DLX download of everything",
        "GET",
        "/dlx/v1/downloadall",
        _download,
        {"headers": {**_bearer(token), **(headers or {})}},
    )
