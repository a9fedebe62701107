"""The DLX service wired to stand-ins of codes, auth and storage (support_standins.py,
support_storage.py, support_packages.py), and the steps every DLX test takes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from hds_common.pdi import PdiPatient
from hds_common.settings import SuiteSettings
from hds_common.testing.asgi import ServiceRouterTransport, running
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import DLX_AUDIENCE
from hds_dlx.config import Settings
from hds_dlx.main import create_app
from tests.dlx.support_packages import StandinDocument, StandinPackage, StandinStudy
from tests.dlx.support_standins import AuthStandin, CodesStandin
from tests.dlx.support_storage import StorageStandin

SECRET = "dlx-test-internal-secret"
BIRTH_DATE = dt.date(1970, 1, 1)
MAX = PdiPatient(
    patient_id="PAT-0001",
    patient_name="Mustermann^Max",
    birth_date="19700101",
    sex="M",
    studies=(),
)
ERIKA = PdiPatient(
    patient_id="PAT-0002",
    patient_name="Musterfrau^Erika",
    birth_date="19800202",
    sex="F",
    studies=(),
)


@dataclass
class World:
    """Stand-ins with data: a complete package with two studies and a report (code, an
    expired code and the birth date for it), another code's package, and an open one."""

    issuer: TestIssuer
    codes: CodesStandin
    auth: AuthStandin
    storage: StorageStandin
    package: StandinPackage
    ct: StandinStudy
    mr: StandinStudy
    report: StandinDocument
    code: str
    expired_code: str
    other_package: StandinPackage
    other_code: str
    open_package: StandinPackage
    open_code: str

    def transport(self) -> ServiceRouterTransport:
        transport = ServiceRouterTransport()
        transport.register("codes.internal", self.codes.app)
        transport.register("auth.internal", self.auth.app)
        transport.register("storage.internal", self.storage.app)
        return transport

    def dlx_token(self, package: StandinPackage, **overrides: Any) -> str:
        """A DLX token as the identity service mints it after a code validation."""
        claims: dict[str, Any] = {"grant": package.grant, "pkg": package.id, "ttl": 600}
        claims.update(overrides)
        return self.issuer.mint("code-id-1", audience=DLX_AUDIENCE, **claims)


def dlx_settings(**overrides: Any) -> Settings:
    suite = SuiteSettings(
        environment="test",
        internal_secret=SECRET,
        codes_url="http://codes.internal",
        auth_url="http://auth.internal",
        storage_url="http://storage.internal",
        public_base_url="http://dlx.test",
        log_json=False,
    )
    values: dict[str, Any] = {"suite": suite, "stream_client": "httpx"}
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def dlx_client(
    world: World, settings: Settings | None = None, **client_options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The DLX app (lifespan running) and a client for it; neighbours are the stand-ins."""
    app = create_app(settings or dlx_settings(), transport=world.transport())
    async with running(world.codes.app, world.auth.app, world.storage.app, app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://dlx.test",
            **client_options,
        ) as client:
            yield client, app


async def tokentfa(
    client: httpx.AsyncClient, code: str, answer: Any = "19700101"
) -> httpx.Response:
    return await client.post(
        f"/dlx/v1/tokentfa/{code}",
        json={"tfaAnswer": [{"questionId": "1", "answer": answer}]},
    )


async def bearer(client: httpx.AsyncClient, code: str, answer: str = "19700101") -> dict[str, str]:
    response = await tokentfa(client, code, answer)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.text}"}
