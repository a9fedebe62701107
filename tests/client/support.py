"""Helpers of the ``hds`` client's tests: a stand-in of the gateway that routes to
in-process apps, test files to publish, and the command line run in-process."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydicom.uid import CTImageStorage

from hds_client.cli import run
from hds_common.testing.dicom import make_dicom, make_pdf

__all__ = ["GatewayStandInTransport", "run_cli", "write_dicom", "write_pdf"]


class GatewayStandInTransport(httpx.AsyncBaseTransport):
    """Stand-in of the gateway for the CLI: routes by path prefix to in-process apps."""

    def __init__(self, routes: dict[str, FastAPI]) -> None:
        self._routes = {prefix: httpx.ASGITransport(app=app) for prefix, app in routes.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for prefix, transport in self._routes.items():
            if request.url.path.startswith(prefix):
                return await transport.handle_async_request(request)
        return httpx.Response(404, json={"type": "urn:hds:problem:not-found"})


# -- test data ------------------------------------------------------------------------------


def write_dicom(path: Path, *, study: str, sop_class: str = CTImageStorage) -> None:
    """A small image of patient P-1234 (Doe^Jane, born 1970-01-31) at ``path``."""
    dicom = make_dicom(
        patient_id="P-1234",
        birth_date="19700131",
        study_uid=study,
        sop_class=sop_class,
        rows=4,
        columns=4,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dicom.data)


def write_pdf(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_pdf("Report: no abnormality detected."))


async def run_cli(
    args: list[str], *, transport: httpx.AsyncBaseTransport, cwd: Path
) -> tuple[int, str, str]:
    """``hds <args>`` in-process through ``transport``: exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    status = await run(args, transport=transport, stdout=out, stderr=err, cwd=cwd)
    return status, out.getvalue(), err.getvalue()
