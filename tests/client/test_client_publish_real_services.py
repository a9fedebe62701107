"""``hds publish`` → code → import, with the real identity and storage services in-process.

The other tests use stand-ins; this one checks that the contract holds with the services
themselves (SQLite, filesystem blob store, demo institution as ``make run`` creates it).
Only the gateway is a stand-in (routing by path prefix).
"""

from __future__ import annotations

import email
import email.policy
import json
import re
from email.message import EmailMessage
from pathlib import Path

import httpx
from pydantic import SecretStr
from pydicom.uid import generate_uid

from hds_auth import __main__ as auth_cli
from hds_auth.config import Settings as AuthSettings
from hds_auth.main import create_app as create_auth_app
from hds_codes.config import Settings as CodesSettings
from hds_codes.main import create_app as create_codes_app
from hds_common.crypto import FAST_ARGON2, b64e, load_or_create_private_key, public_key_to_bytes
from hds_common.settings import SuiteSettings
from hds_common.testing.asgi import ServiceRouterTransport, running
from hds_storage.config import Settings as StorageSettings
from hds_storage.main import create_app as create_storage_app
from tests.client.support import GatewayStandInTransport, run_cli, write_dicom, write_pdf
from tests.codes.support import assert_problem


async def test_published_code_imports_into_a_patient_account(tmp_path: Path) -> None:
    grant_key_file = tmp_path / "keys" / "storage-grant.key"
    grant_key = load_or_create_private_key(grant_key_file)
    suite = SuiteSettings(
        environment="test",
        auth_url="http://auth.internal",
        storage_url="http://storage.internal",
        codes_url="http://codes.internal",
        public_base_url="https://portal.example.org",
        internal_secret=SecretStr("end-to-end-internal-secret"),
        grant_public_key=b64e(public_key_to_bytes(grant_key.public_key())),
    )
    auth_settings = AuthSettings(
        database_url=f"sqlite:///{tmp_path / 'auth.db'}",
        signing_key_dir=tmp_path / "keys" / "auth",
        outbox_dir=tmp_path / "outbox",
        # The demo institution exists only in development, as with `make run`.
        demo_institution=True,
        suite=suite.model_copy(update={"environment": "development"}),
        argon2_time_cost=FAST_ARGON2.time_cost,
        argon2_memory_kib=FAST_ARGON2.memory_cost_kib,
    )
    router = ServiceRouterTransport()
    auth = create_auth_app(auth_settings, transport=router)
    storage = create_storage_app(
        StorageSettings(
            database_url=f"sqlite:///{tmp_path / 'storage.db'}",
            blob_url=str(tmp_path / "blobs"),
            grant_private_key_file=str(grant_key_file),
            suite=suite,
        ),
        transport=router,
    )
    codes = create_codes_app(
        CodesSettings(
            database_url=f"sqlite:///{tmp_path / 'codes.db'}",
            lookup_secret_file=tmp_path / "keys" / "codes-lookup.key",
            suite=suite,
            argon2_time_cost=FAST_ARGON2.time_cost,
            argon2_memory_kib=FAST_ARGON2.memory_cost_kib,
        ),
        transport=router,
    )
    router.register("auth.internal", auth)
    router.register("storage.internal", storage)
    router.register("codes.internal", codes)

    repository = tmp_path / "repository"
    assert (
        await auth_cli.ensure_demo(
            auth_settings, output=repository / "var" / "demo-credentials.json"
        )
        == 0
    )
    # The patient is invited (the command line) and accepts the mailed link.
    assert (
        await auth_cli.invite(
            auth_settings,
            email="patient@example.org",
            role="patient",
            name="Jane Doe",
            quota_bytes=None,
            default_code_validity_days=None,
        )
        == 0
    )
    [mail] = (tmp_path / "outbox").glob("*.eml")
    message = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    link = re.search(r"/auth/v1/invitation\?token=([A-Za-z0-9_-]+)", str(message.get_content()))
    assert link is not None
    study = generate_uid()
    source = tmp_path / "cd"
    for name in ("IM1", "IM2", "sub/IM3"):
        write_dicom(source / name, study=study)
    write_pdf(source / "report.pdf")

    gateway = GatewayStandInTransport({"/auth/": auth, "/storage/": storage, "/codes/": codes})
    async with running(auth, storage, codes):
        status, out, err = await run_cli(
            ["publish", str(source), "--birth-date", "19700131", "--json"],
            transport=gateway,
            cwd=repository,
        )
        assert status == 0, err
        result = json.loads(out)
        assert (result["dicom_files"], result["pdf_files"]) == (3, 1)

        async with httpx.AsyncClient(transport=gateway, base_url="http://gateway") as client:
            accepted = await client.post(
                "/auth/v1/invitation/accept",
                json={"token": link.group(1), "password": "patient-password-1"},
            )
            assert accepted.status_code == 201, accepted.text
            login = await client.post(
                "/auth/v1/login",
                json={"email": "patient@example.org", "password": "patient-password-1"},
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            wrong = await client.post(
                "/codes/v1/import",
                json={"code": result["code"], "birth_date": "1970-01-30"},
                headers=headers,
            )
            assert_problem(wrong, 401, "invalid-code")
            imported = await client.post(
                "/codes/v1/import",
                json={"code": result["code"].lower(), "birth_date": "1970-01-31"},
                headers=headers,
            )
            assert imported.status_code == 200, imported.text
            assert imported.json()["studies"] == 1
            assert imported.json()["documents"] == 1
            studies = (await client.get("/storage/v1/studies", headers=headers)).json()
            assert [s["study_instance_uid"] for s in studies] == [study]
            documents = (await client.get("/storage/v1/documents", headers=headers)).json()
            assert len(documents) == 1
