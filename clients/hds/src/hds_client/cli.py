"""``hds``: the suite's command-line tool, a client of the gateway.

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
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import httpx

from hds_client.api import DEFAULT_GATEWAY, SuiteClient
from hds_client.errors import ClientError
from hds_client.files import find_uploads
from hds_client.publish import PublishResult, parse_birth_date, publish

__all__ = ["DEMO_CREDENTIALS", "build_parser", "credentials", "main", "run"]

DEMO_CREDENTIALS = Path("var") / "demo-credentials.json"


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
        raise ClientError("give both --email and --password")
    demo = cwd / DEMO_CREDENTIALS
    try:
        stored = json.loads(demo.read_text(encoding="utf-8"))
        return str(stored["email"]), str(stored["password"])
    except FileNotFoundError:
        raise ClientError(
            f"no credentials: give --email and --password, or run from the repository "
            f"after `make run` (it writes {DEMO_CREDENTIALS})"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"{demo} is unreadable: {exc}") from None


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
        except ClientError as exc:
            raise ClientError(f"--birth-date: {exc}") from None
        email, password = credentials(args.email, args.password, cwd or Path.cwd())
        uploads = find_uploads(args.paths)
        async with SuiteClient(args.gateway, transport=transport) as api:
            result = await publish(
                api,
                uploads=uploads,
                birth_date=birth_date,
                email=email,
                password=password,
                validity_days=args.days,
                patient_id=args.patient_id,
                patient_name=args.patient_name,
                progress=None if args.json else err,
            )
    except ClientError as exc:
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
