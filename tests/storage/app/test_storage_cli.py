"""``python -m hds_storage grant-public-key`` prints the key grants are sealed to."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hds_common.crypto import b64d, load_or_create_private_key, public_key_to_bytes
from hds_storage.__main__ import main


def test_grant_public_key_prints_the_public_half_of_the_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "keys" / "storage-grant.key"
    monkeypatch.setenv("HDS_STORAGE_GRANT_PRIVATE_KEY_FILE", str(key_file))
    monkeypatch.setattr(sys, "argv", ["hds_storage", "grant-public-key"])

    main()
    first = capsys.readouterr().out.strip()
    main()
    second = capsys.readouterr().out.strip()

    assert key_file.exists()
    assert first == second
    expected = public_key_to_bytes(load_or_create_private_key(key_file).public_key())
    assert b64d(first) == expected
