"""The typed client of the suite's API (hds_client.api) against the codes app and the
stand-ins of its neighbours, behind a stand-in of the gateway: typed answers, and error
answers as ApiError with the problem's slug."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
from pydicom.uid import generate_uid

from hds_client.api import ApiError, ClientError, SuiteClient, SyncSuiteClient, Unreachable
from hds_common.testing.dicom import make_dicom
from tests.client.support import GatewayStandInTransport
from tests.codes.support import Harness, stand_in_identity, stand_in_storage

pytestmark = pytest.mark.postgres


@pytest.fixture
def gateway(codes: Harness) -> GatewayStandInTransport:
    return GatewayStandInTransport(
        {
            "/auth/": stand_in_identity(codes.hood),
            "/storage/": stand_in_storage(codes.hood),
            "/codes/": codes.app,
        }
    )


async def test_publish_and_issue_with_typed_answers(
    codes: Harness, gateway: GatewayStandInTransport
) -> None:
    institution = codes.account(code_validity_days=60)
    dicom = make_dicom(patient_id="P-1", birth_date="19700131", study_uid=generate_uid()).data
    async with SuiteClient("http://gateway.test", transport=gateway) as api:
        with pytest.raises(ClientError, match="log in first"):
            await api.create_package()
        tokens = await api.login(institution.email, institution.password)
        assert tokens.access_token == api.token
        package = await api.create_package()
        assert package.state == "open"
        await api.upload_instance(package.id, dicom, length=len(dicom), name="IM1")
        assert (await api.package(package.id)).patient == {"patient_id": "P-1", "name": "Doe^Jane"}
        await api.complete_package(package.id)
        issued = await api.issue_code(package.id, dt.date(1970, 1, 31))
    assert issued.package_id == package.id
    assert issued.validity_days == 60
    assert issued.link.endswith(f"/c/{issued.code}")
    assert codes.hood.packages[package.id].complete
    validated = await codes.validate(issued.code, "19700131")
    assert validated.json()["code_id"] == issued.id


async def test_error_answers_carry_status_and_slug(
    codes: Harness, gateway: GatewayStandInTransport
) -> None:
    institution = codes.account()
    async with SuiteClient("http://gateway.test", transport=gateway) as api:
        with pytest.raises(ApiError) as wrong:
            await api.login(institution.email, "wrong")
        assert (wrong.value.status, wrong.value.slug) == (401, "invalid-credentials")
        assert str(wrong.value).startswith("login failed (401)")
        await api.login(institution.email, institution.password)
        package = codes.package(institution)
        with pytest.raises(ApiError) as refused:
            await api.issue_code(package.id, dt.date(1970, 1, 31), validity_days=365)
        assert (refused.value.status, refused.value.slug) == (422, "validity-out-of-range")


def test_an_unreachable_gateway_is_named() -> None:
    # Port 9 (discard) has no listener here.
    with SyncSuiteClient("http://127.0.0.1:9", timeout=httpx.Timeout(5.0)) as api:
        with pytest.raises(Unreachable, match=r"login: cannot reach http://127\.0\.0\.1:9"):
            api.login("someone@example.org", "password")
