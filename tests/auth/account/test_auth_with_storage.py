"""The identity service wired to the real storage service in one process: /me asks
storage for usage, and storage accepts this service's
account tokens through the published JWKS and honours a quota override."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import SecretStr

from hds_auth.main import create_app as create_auth_app
from hds_common.crypto import b64e, private_key_to_bytes, public_key_to_bytes
from hds_common.settings import SuiteSettings
from hds_common.testing.asgi import ServiceRouterTransport, running
from hds_common.testing.smtp import SmtpTestServer
from hds_storage.config import Settings as StorageSettings
from hds_storage.main import create_app as create_storage_app
from tests.auth.support import (
    INTERNAL_SECRET,
    ISSUER,
    Accounts,
    AuthApp,
    bearer,
    make_settings,
    wipe,
)

AUTH_HOST = "auth.internal"
STORAGE_HOST = "storage.internal"
MIB = 1024 * 1024


@dataclass
class Suite:
    auth: AuthApp
    storage: httpx.AsyncClient


@pytest.fixture
async def suite(
    tmp_path: Path,
    database_url: str,
    signing_key_dir: Path,
    smtp_server: SmtpTestServer,
    storage_grant_key: X25519PrivateKey,
) -> AsyncIterator[Suite]:
    # Storage loads its grant key from a file; give it the pair this suite seals to.
    key_file = tmp_path / "storage-grant.key"
    key_file.write_text(b64e(private_key_to_bytes(storage_grant_key)) + "\n")
    key_file.chmod(0o600)
    transport = ServiceRouterTransport()
    auth_app = create_auth_app(
        make_settings(
            database_url=database_url,
            signing_key_dir=signing_key_dir,
            smtp=smtp_server,
            storage_public_key=public_key_to_bytes(storage_grant_key.public_key()),
        ),
        transport=transport,
    )
    storage_app = create_storage_app(
        StorageSettings(
            database_url=f"sqlite:///{tmp_path / 'storage.db'}",
            blob_url=str(tmp_path / "blobs"),
            grant_private_key_file=str(key_file),
            suite=SuiteSettings(
                environment="test",
                internal_secret=SecretStr(INTERNAL_SECRET),
                jwt_issuer=ISSUER,
                auth_url=f"http://{AUTH_HOST}",
                storage_url=f"http://{STORAGE_HOST}",
            ),
        ),
        transport=transport,
    )
    transport.register(AUTH_HOST, auth_app)
    transport.register(STORAGE_HOST, storage_app)
    async with (
        running(auth_app, storage_app),
        httpx.AsyncClient(transport=transport, base_url=f"http://{AUTH_HOST}") as auth_client,
        httpx.AsyncClient(transport=transport, base_url=f"http://{STORAGE_HOST}") as storage,
    ):
        try:
            yield Suite(AuthApp(auth_app, auth_client, transport), storage)
        finally:
            await wipe(auth_app.state.runtime)


async def test_me_and_storage_agree_on_quota_and_usage(
    suite: Suite, smtp_server: SmtpTestServer
) -> None:
    accounts = Accounts(suite.auth, smtp_server)
    patient = await accounts.active()
    tokens = await accounts.login(patient)

    me = await suite.auth.client.get("/auth/v1/me", headers=bearer(tokens))
    assert me.status_code == 200
    assert me.json()["used_bytes"] == 0
    assert me.json()["quota_bytes"] == 1024 * MIB

    # Storage verifies the account token against this service's JWKS.
    usage = await suite.storage.get("/storage/v1/usage", headers=bearer(tokens))
    assert usage.status_code == 200, usage.text
    assert usage.json()["used_bytes"] == 0
    assert usage.json()["quota_bytes"] == 1024 * MIB
    assert usage.json()["deletion_mode"] == "automatic"

    # An administrator's quota override and a settings change reach storage at once.
    admin = await accounts.privileged(role="admin")
    patched = await suite.auth.client.patch(
        f"/auth/v1/admin/accounts/{patient.id}",
        json={"quota_bytes": 2048 * MIB},
        headers=bearer(await accounts.login(admin)),
    )
    assert patched.status_code == 200
    await suite.auth.client.patch(
        "/auth/v1/me/settings", json={"deletion_mode": "manual"}, headers=bearer(tokens)
    )
    usage = await suite.storage.get("/storage/v1/usage", headers=bearer(tokens))
    assert usage.json()["quota_bytes"] == 2048 * MIB
    assert usage.json()["deletion_mode"] == "manual"
