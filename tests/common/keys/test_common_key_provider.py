"""The key provider: the one place the grant key and the lookup secret come from.

The file provider is exercised as the services use it (created on first use, private,
the same key for concurrent first starts), and the services' sources are checked to read
those keys through it only, so another provider (a KMS, an HSM) replaces it in one place.
"""

from __future__ import annotations

import ast
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hds_common.crypto import CryptoError, b64d, b64e, private_key_to_bytes
from hds_common.key_provider import SECRET_SIZE, FileKeyProvider, key_provider
from hds_common.settings import SuiteSettings
from tests.common.support import REPO

# Readers of key files that only the key provider may call.
KEY_FILE_READERS = {"load_or_create_private_key", "load_or_create_secret"}


def test_the_file_provider_is_the_default_and_creates_private_reusable_keys(
    tmp_path: Path,
) -> None:
    provider = key_provider(SuiteSettings().key_provider)
    assert isinstance(provider, FileKeyProvider)
    secret_file = tmp_path / "keys" / "lookup.key"
    secret = provider.secret(str(secret_file))
    assert len(secret) == SECRET_SIZE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert b64d(secret_file.read_text().strip()) == secret
    assert provider.secret(str(secret_file)) == secret
    key_file = tmp_path / "keys" / "grant.key"
    key = provider.x25519_private_key(str(key_file))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert private_key_to_bytes(provider.x25519_private_key(str(key_file))) == (
        private_key_to_bytes(key)
    )
    assert sorted(p.name for p in secret_file.parent.iterdir()) == ["grant.key", "lookup.key"]


def test_concurrent_first_starts_end_up_with_one_secret(tmp_path: Path) -> None:
    path = str(tmp_path / "lookup.key")
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: FileKeyProvider().secret(path), range(16)))
    assert len(secrets) == 1


def test_malformed_or_short_key_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "lookup.key"
    path.write_text("not base64url!\n")
    with pytest.raises(RuntimeError, match="base64url"):
        FileKeyProvider().secret(str(path))
    path.write_text(b64e(bytes(SECRET_SIZE - 1)))
    with pytest.raises(RuntimeError, match="shorter"):
        FileKeyProvider().secret(str(path))
    path.write_text(b64e(bytes(31)))
    with pytest.raises(CryptoError):
        FileKeyProvider().x25519_private_key(str(path))


def test_services_read_key_files_only_through_the_key_provider() -> None:
    readers: list[str] = []
    sources = [*REPO.glob("services/*/src/**/*.py"), REPO / "deploy/local/run.py"]
    for source in sources:
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            readers += [f"{source.relative_to(REPO)}: {n}" for n in names if n in KEY_FILE_READERS]
    assert readers == []
    # And both keys are asked of the provider the suite settings name.
    storage = (REPO / "services/storage/src/hds_storage/main.py").read_text()
    codes = (REPO / "services/codes/src/hds_codes/main.py").read_text()
    assert "key_provider(settings.suite.key_provider).x25519_private_key" in storage
    assert "key_provider(suite.key_provider).secret" in codes
