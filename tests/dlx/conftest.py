"""Fixtures of the DLX tests: the stand-in world and a client of the DLX app."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest

from hds_common.testing.tokens import TestIssuer
from tests.dlx.support import BIRTH_DATE, ERIKA, MAX, SECRET, World, dlx_client
from tests.dlx.support_standins import AuthStandin, CodesStandin
from tests.dlx.support_storage import StorageStandin


@pytest.fixture(scope="module")
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def world(issuer: TestIssuer) -> World:
    codes = CodesStandin(SECRET)
    auth = AuthStandin(SECRET, issuer)
    storage = StorageStandin(SECRET)

    package = storage.add_package()
    ct = package.add_study(
        patient=MAX, description="CT Thorax", date="20240419", modality="CT", instances=3
    )
    mr = package.add_study(patient=MAX, description="MRT Knie", date="", modality="MR", instances=2)
    report = package.add_document(patient=MAX, title="Befund CT Thorax", date="20240420")
    code = codes.issue(package_id=package.id, birth_date=BIRTH_DATE, grant=package.grant)
    expired_code = codes.issue(
        package_id=package.id,
        birth_date=BIRTH_DATE,
        grant=package.grant,
        expires_in=-dt.timedelta(days=1),
    )

    other_package = storage.add_package()
    other_package.add_study(
        patient=ERIKA, description="Röntgen Hand", date="20230101", modality="CR", instances=1
    )
    other_package.add_document(patient=ERIKA, title="Befund Hand", date="20230102")
    other_code = codes.issue(
        package_id=other_package.id, birth_date=dt.date(1980, 2, 2), grant=other_package.grant
    )

    open_package = storage.add_package(state="open")
    open_code = codes.issue(
        package_id=open_package.id, birth_date=BIRTH_DATE, grant=open_package.grant
    )
    return World(
        issuer=issuer,
        codes=codes,
        auth=auth,
        storage=storage,
        package=package,
        ct=ct,
        mr=mr,
        report=report,
        code=code,
        expired_code=expired_code,
        other_package=other_package,
        other_code=other_code,
        open_package=open_package,
        open_code=open_code,
    )


@pytest.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with dlx_client(world) as (client, _):
        yield client
