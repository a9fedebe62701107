"""``hds``: the suite's command-line tool.

``hds publish PATH... --birth-date YYYYMMDD`` publishes DICOM files and PDF reports as
an institution through the gateway: log in, create a package, upload every DICOM and
PDF file found under the paths (by content, not by name), complete the package, issue
an access code, and print the code and its portal link.

Run from the repository after ``make run`` it needs no credentials: it uses the demo
institution written to ``./var/demo-credentials.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import httpx

from hds_codes.values import InvalidBirthDate, parse_birth_date

__all__ = [
    "PublishError",
    "PublishResult",
    "UploadSet",
    "find_uploads",
    "main",
    "publish",
    "run",
    "sniff",
]

DEFAULT_GATEWAY = "http://127.0.0.1:8000"
DEMO_CREDENTIALS = Path("var") / "demo-credentials.json"
CHUNK_SIZE = 1024 * 1024
UPLOAD_CONCURRENCY = 4
# A DICOMDIR is a DICOM file too, but an index of a medium rather than an instance.
_MEDIA_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"

FileKind = Literal["dicom", "pdf"]


class PublishError(Exception):
    """Something the user has to fix or know about; printed without a trace."""


@dataclass
class UploadSet:
    dicom: list[Path] = field(default_factory=list)
    pdf: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class PublishResult:
    package_id: str
    code_id: str
    code: str
    link: str
    expires_at: str
    qr_svg: str
    qr_png: str
    sheet_pdf: str
    dicom_files: int
    pdf_files: int
    skipped_files: int


# -- finding files ---------------------------------------------------------------------


def sniff(path: Path) -> FileKind | None:
    """``dicom`` (``DICM`` at offset 128), ``pdf`` (starts with ``%PDF-``) or ``None``."""
    try:
        with path.open("rb") as file:
            head = file.read(132)
    except OSError:
        return None
    if head.startswith(b"%PDF-"):
        return "pdf"
    if len(head) == 132 and head[128:132] == b"DICM" and not _is_dicomdir(path):
        return "dicom"
    return None


def _is_dicomdir(path: Path) -> bool:
    from pydicom.errors import InvalidDicomError
    from pydicom.filereader import read_file_meta_info

    try:
        meta = read_file_meta_info(path)
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return False
    return str(meta.get("MediaStorageSOPClassUID", "")) == _MEDIA_DIRECTORY_SOP_CLASS


def _walk(path: Path) -> Iterable[Path]:
    if path.is_file():
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


def find_uploads(paths: Sequence[Path]) -> UploadSet:
    """Every DICOM and PDF file under ``paths`` (recursively), each once."""
    found = UploadSet()
    seen: set[Path] = set()
    for given in paths:
        if not given.exists():
            raise PublishError(f"{given}: no such file or directory")
        for path in _walk(given):
            real = path.resolve()
            if real in seen or not real.is_file():
                continue
            seen.add(real)
            kind = sniff(path)
            if kind == "dicom":
                found.dicom.append(path)
            elif kind == "pdf":
                found.pdf.append(path)
            else:
                found.skipped.append(path)
    return found


# -- talking to the gateway ----------------------------------------------------------------


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
            yield chunk


def _problem(response: httpx.Response, action: str) -> PublishError:
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            parts = [str(body[k]) for k in ("title", "detail") if body.get(k)]
            detail = ": ".join(parts)
    except ValueError:
        detail = response.text[:200]
    return PublishError(f"{action} failed ({response.status_code}){': ' if detail else ''}{detail}")


async def _call(
    client: httpx.AsyncClient, action: str, method: str, url: str, **kwargs: Any
) -> dict[str, Any]:
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise PublishError(f"{action}: cannot reach {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        raise _problem(response, action)
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise PublishError(f"{action}: the answer is not JSON") from None
    return body if isinstance(body, dict) else {"items": body}


async def _upload_dicom(
    client: httpx.AsyncClient, headers: dict[str, str], package_id: str, path: Path
) -> None:
    upload_headers = {
        **headers,
        "Content-Type": "application/dicom",
        # A length lets the server check the upload; the body itself is streamed.
        "Content-Length": str(path.stat().st_size),
    }
    await _call(
        client,
        f"upload of {path}",
        "POST",
        f"/storage/v1/packages/{package_id}/instances",
        content=_file_chunks(path),
        headers=upload_headers,
    )


async def _upload_pdf(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    package_id: str,
    path: Path,
    patient: dict[str, str],
) -> None:
    # Storage takes PDFs as multipart/form-data with the patient they belong to; httpx
    # streams the file part from disk.
    with path.open("rb") as file:
        await _call(
            client,
            f"upload of {path}",
            "POST",
            f"/storage/v1/packages/{package_id}/documents",
            data=patient,
            files={"file": (path.name, file, "application/pdf")},
            headers=headers,
        )


async def _pdf_patient(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    package_id: str,
    *,
    birth_date: dt.date,
    patient_id: str | None,
    patient_name: str | None,
) -> dict[str, str]:
    """The patient assignment of the PDFs: the package's patient (from its DICOM files),
    else the one given on the command line."""
    package = await _call(
        client, "package lookup", "GET", f"/storage/v1/packages/{package_id}", headers=headers
    )
    patient = package.get("patient")
    if isinstance(patient, dict) and patient.get("patient_id"):
        return {"patient_id": str(patient["patient_id"])}
    if not (patient_id and patient_name):
        raise PublishError(
            "PDF reports must be assigned to a patient: with no DICOM files, give "
            "--patient-id and --patient-name"
        )
    return {
        "patient_id": patient_id,
        "patient_name": patient_name,
        "patient_birth_date": f"{birth_date:%Y%m%d}",
    }


async def publish(
    client: httpx.AsyncClient,
    *,
    uploads: UploadSet,
    birth_date: dt.date,
    email: str,
    password: str,
    validity_days: int | None = None,
    patient_id: str | None = None,
    patient_name: str | None = None,
    progress: TextIO | None = None,
) -> PublishResult:
    """The whole publishing flow against the gateway ``client`` points at."""

    def say(text: str) -> None:
        if progress is not None:
            print(text, file=progress, flush=True)

    if not uploads.dicom and not uploads.pdf:
        raise PublishError("no DICOM or PDF files found")
    login = await _call(
        client, "login", "POST", "/auth/v1/login", json={"email": email, "password": password}
    )
    token = login.get("access_token") or login.get("token")
    if not isinstance(token, str):
        raise PublishError("login: the answer carries no access token")
    headers = {"Authorization": f"Bearer {token}"}

    package = await _call(
        client, "package creation", "POST", "/storage/v1/packages", json={}, headers=headers
    )
    package_id = str(package.get("id", ""))
    if not package_id:
        raise PublishError("package creation: the answer carries no package id")
    say(
        f"Uploading {len(uploads.dicom)} DICOM file(s) and {len(uploads.pdf)} PDF file(s) "
        f"to package {package_id}"
    )
    limit = asyncio.Semaphore(UPLOAD_CONCURRENCY)

    async def upload(path: Path) -> None:
        async with limit:
            await _upload_dicom(client, headers, package_id, path)

    try:
        async with asyncio.TaskGroup() as group:
            for path in uploads.dicom:
                group.create_task(upload(path))
    except ExceptionGroup as failed:
        # Report the first failed upload; the others were cancelled or failed alike.
        first = failed.exceptions[0]
        if isinstance(first, PublishError):
            raise first from None
        raise
    if uploads.pdf:
        # After the DICOM files, which give the package its patient.
        patient = await _pdf_patient(
            client,
            headers,
            package_id,
            birth_date=birth_date,
            patient_id=patient_id,
            patient_name=patient_name,
        )
        for path in uploads.pdf:
            await _upload_pdf(client, headers, package_id, path, patient)
    await _call(
        client,
        "package completion",
        "POST",
        f"/storage/v1/packages/{package_id}/complete",
        headers=headers,
    )

    request: dict[str, Any] = {"package_id": package_id, "birth_date": f"{birth_date:%Y%m%d}"}
    if validity_days is not None:
        request["validity_days"] = validity_days
    issued = await _call(
        client, "code issue", "POST", "/codes/v1/codes", json=request, headers=headers
    )
    try:
        return PublishResult(
            package_id=package_id,
            code_id=str(issued["id"]),
            code=str(issued["code"]),
            link=str(issued["link"]),
            expires_at=str(issued["expires_at"]),
            qr_svg=str(issued.get("qr_svg", "")),
            qr_png=str(issued.get("qr_png", "")),
            sheet_pdf=str(issued.get("sheet_pdf", "")),
            dicom_files=len(uploads.dicom),
            pdf_files=len(uploads.pdf),
            skipped_files=len(uploads.skipped),
        )
    except KeyError as exc:
        raise PublishError(f"code issue: the answer lacks {exc}") from None


# -- command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hds", description="HDS suite command-line tool")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    pub = commands.add_parser(
        "publish",
        help="publish DICOM and PDF files and issue an access code",
        description="Upload every DICOM and PDF file under PATH (recognised by content) as "
        "one package, issue an access code for it and print the code and its link.",
    )
    pub.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="files or folders (searched recursively)",
    )
    pub.add_argument("--birth-date", required=True, help="patient's birth date, YYYYMMDD")
    pub.add_argument("--days", type=int, help="validity of the code in days (30-90)")
    pub.add_argument(
        "--gateway",
        default=os.environ.get("HDS_GATEWAY_URL", DEFAULT_GATEWAY),
        help="gateway URL (default: $HDS_GATEWAY_URL or %(default)s)",
    )
    pub.add_argument("--email", help="institution account (default: $HDS_EMAIL, demo account)")
    pub.add_argument("--password", help="its password (default: $HDS_PASSWORD)")
    pub.add_argument("--patient-id", help="PatientID for PDF reports when there are no DICOM files")
    pub.add_argument(
        "--patient-name", help="patient name (DICOM form, Family^Given) for PDF-only packages"
    )
    pub.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def credentials(email: str | None, password: str | None, cwd: Path) -> tuple[str, str]:
    """Given ones, else ``$HDS_EMAIL``/``$HDS_PASSWORD``, else the demo institution."""
    email = email or os.environ.get("HDS_EMAIL")
    password = password or os.environ.get("HDS_PASSWORD")
    if email and password:
        return email, password
    if email or password:
        raise PublishError("give both --email and --password")
    demo = cwd / DEMO_CREDENTIALS
    try:
        stored = json.loads(demo.read_text(encoding="utf-8"))
        return str(stored["email"]), str(stored["password"])
    except FileNotFoundError:
        raise PublishError(
            f"no credentials: give --email and --password, or run from the repository "
            f"after `make run` (it writes {DEMO_CREDENTIALS})"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PublishError(f"{demo} is unreadable: {exc}") from None


def _print_result(result: PublishResult, out: TextIO) -> None:
    lines = [
        f"Published {result.dicom_files} DICOM file(s) and {result.pdf_files} PDF file(s) "
        f"as package {result.package_id}.",
        "",
        f"  Access code:  {result.code}",
        f"  Link:         {result.link}",
        f"  Expires:      {result.expires_at}",
        f"  QR code:      {result.qr_svg}",
        f"  Sheet (PDF):  {result.sheet_pdf}",
    ]
    if result.skipped_files:
        lines.append(f"\n{result.skipped_files} file(s) skipped: neither DICOM nor PDF.")
    print("\n".join(lines), file=out)


async def run(
    argv: Sequence[str] | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    cwd: Path | None = None,
) -> int:
    """The command line; ``transport`` replaces the network (tests)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        try:
            birth_date = parse_birth_date(args.birth_date)
        except InvalidBirthDate as exc:
            raise PublishError(f"--birth-date: {exc}") from None
        email, password = credentials(args.email, args.password, cwd or Path.cwd())
        uploads = find_uploads(args.paths)
        async with httpx.AsyncClient(
            base_url=args.gateway,
            transport=transport,
            timeout=httpx.Timeout(120.0, connect=10.0),
        ) as client:
            result = await publish(
                client,
                uploads=uploads,
                birth_date=birth_date,
                email=email,
                password=password,
                validity_days=args.days,
                patient_id=args.patient_id,
                patient_name=args.patient_name,
                progress=None if args.json else err,
            )
    except PublishError as exc:
        print(f"hds publish: {exc}", file=err)
        return 1
    if args.json:
        print(json.dumps(asdict(result), indent=2), file=out)
    else:
        _print_result(result, out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hds`` console script."""
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        return 130
