"""hds_common.settings: a service's own prefix for where it listens and its database, the
suite's ``HDS_`` prefix for what every service shares, the grant key parsed once."""

from __future__ import annotations

import pytest
from pydantic_settings import SettingsConfigDict

from hds_common.crypto import b64e, generate_private_key, public_key_to_bytes
from hds_common.settings import DatabaseServiceSettings, ServiceSettings, SuiteSettings


class ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HDS_EXAMPLE_", extra="ignore")

    port: int = 8009


class ExampleDatabaseSettings(DatabaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HDS_EXAMPLE_", extra="ignore")

    database_url: str = "sqlite:///var/example.db"


def test_a_service_reads_where_it_listens_under_its_own_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (ExampleSettings().host, ExampleSettings().port) == ("127.0.0.1", 8009)
    monkeypatch.setenv("HDS_EXAMPLE_HOST", "0.0.0.0")
    monkeypatch.setenv("HDS_EXAMPLE_PORT", "9100")
    # Another service's variables and the bare names are not this service's.
    monkeypatch.setenv("HDS_OTHER_PORT", "9200")
    monkeypatch.setenv("PORT", "9300")
    settings = ExampleSettings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9100)


def test_the_suite_settings_come_from_the_plain_hds_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HDS_JWT_ISSUER", "issuer-of-the-suite")
    monkeypatch.setenv("HDS_STORAGE_URL", "http://storage.internal:8003")
    monkeypatch.setenv("HDS_EXAMPLE_JWT_ISSUER", "not-this-one")
    suite = ExampleSettings().suite
    assert isinstance(suite, SuiteSettings)
    assert suite.jwt_issuer == "issuer-of-the-suite"
    assert suite.storage_url == "http://storage.internal:8003"


def test_a_database_service_reads_its_database_under_its_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = ExampleDatabaseSettings()
    assert (defaults.database_url, defaults.migrate_on_start) == ("sqlite:///var/example.db", True)
    monkeypatch.setenv("HDS_EXAMPLE_DATABASE_URL", "postgresql://db.internal/example")
    monkeypatch.setenv("HDS_EXAMPLE_MIGRATE_ON_START", "false")
    monkeypatch.setenv("HDS_DATABASE_URL", "postgresql://db.internal/not-this-one")
    settings = ExampleDatabaseSettings()
    assert settings.database_url == "postgresql://db.internal/example"
    assert settings.migrate_on_start is False


def test_no_grant_public_key_is_none() -> None:
    assert SuiteSettings(grant_public_key="").grant_public_key_bytes is None
    assert SuiteSettings(grant_public_key="  ").grant_public_x25519 is None


def test_a_grant_public_key_is_parsed_to_its_raw_bytes() -> None:
    raw = public_key_to_bytes(generate_private_key().public_key())
    settings = SuiteSettings(grant_public_key=b64e(raw))
    assert settings.grant_public_key_bytes == raw
    public = settings.grant_public_x25519
    assert public is not None
    assert public_key_to_bytes(public) == raw


@pytest.mark.parametrize(
    "text",
    ["not base64url!", b64e(b"\x01" * 31), b64e(b"\x01" * 33)],
    ids=["not base64url", "31 bytes", "33 bytes"],
)
def test_a_bad_grant_public_key_raises(text: str) -> None:
    settings = SuiteSettings(grant_public_key=text)
    with pytest.raises(ValueError, match="HDS_GRANT_PUBLIC_KEY"):
        _ = settings.grant_public_key_bytes
