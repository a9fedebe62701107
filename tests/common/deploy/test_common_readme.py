"""The README documents every setting a service reads."""

from __future__ import annotations

import importlib

import pytest

from hds_common.settings import SuiteSettings
from tests.common.support import REPO

README = (REPO / "README.md").read_text()
SHARED_FIELDS = {"host", "port", "database_url", "migrate_on_start"}


@pytest.mark.parametrize("service", ["auth", "codes", "storage", "dlx", "gateway"])
def test_every_service_setting_is_documented(service: str) -> None:
    settings = importlib.import_module(f"hds_{service}.config").Settings
    missing = [
        f"HDS_{service.upper()}_{name.upper()}"
        for name in settings.model_fields
        if name != "suite"
        and name not in SHARED_FIELDS
        and f"`HDS_{service.upper()}_{name.upper()}`" not in README
    ]
    assert missing == []


def test_every_suite_setting_is_documented() -> None:
    missing = [
        f"HDS_{name.upper()}"
        for name in SuiteSettings.model_fields
        if f"`HDS_{name.upper()}`" not in README
    ]
    assert missing == []
