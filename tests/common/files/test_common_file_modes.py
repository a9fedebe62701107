"""What the services create on disk (SQLite databases, key files, mails, blobs) is
readable by their user only, even under the usual umask 022: the databases hold e-mail
addresses and sealed keys, the key files open every grant, code and token."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.common.support import REPO

UMASK = 0o022


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **env},
        cwd=cwd,
        # The umask most systems ship with, under which files default to 0644.
        preexec_fn=lambda: os.umask(UMASK),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def _loose(root: Path) -> dict[str, str]:
    """Everything under ``root`` (and ``root``) that its group or others may read."""
    paths = [root, *root.rglob("*")]
    return {
        str(path.relative_to(root.parent)): oct(stat.S_IMODE(path.stat().st_mode))
        for path in paths
        if stat.S_IMODE(path.stat().st_mode) & 0o077
    }


@pytest.mark.parametrize("service", ["auth", "codes", "storage"])
def test_a_migrated_sqlite_database_is_private(tmp_path: Path, service: str) -> None:
    var = tmp_path / "var"
    _run(
        ["-m", f"hds_{service}", "migrate"],
        {f"HDS_{service.upper()}_DATABASE_URL": f"sqlite:///{var / 'db' / 'x.db'}"},
        tmp_path,
    )
    assert (var / "db" / "x.db").stat().st_size > 0
    assert _loose(var / "db") == {}


def test_generated_keys_are_private(tmp_path: Path) -> None:
    keys = tmp_path / "var" / "keys"
    _run(
        ["-m", "hds_storage", "grant-public-key"],
        {"HDS_STORAGE_GRANT_PRIVATE_KEY_FILE": str(keys / "grant" / "storage-grant.key")},
        tmp_path,
    )
    _run(
        ["-m", "hds_auth", "rotate-keys"],
        {"HDS_AUTH_SIGNING_KEY_DIR": str(keys / "auth")},
        tmp_path,
    )
    _run(
        [
            "-c",
            "import sys; from hds_common.key_provider import FileKeyProvider; "
            "FileKeyProvider().secret(sys.argv[1])",
            str(keys / "codes" / "codes-lookup.key"),
        ],
        {},
        tmp_path,
    )
    assert (keys / "grant" / "storage-grant.key").is_file()
    assert list((keys / "auth").glob("*.pem"))
    assert (keys / "codes" / "codes-lookup.key").is_file()
    assert _loose(keys) == {}


def test_the_local_runner_prepares_a_private_var(tmp_path: Path) -> None:
    """``make run``'s state directory: secrets, keys, blobs, outbox (an older, looser
    var/ is tightened)."""
    var = tmp_path / "var"
    var.mkdir(mode=0o755)
    os.chmod(var, 0o755)
    runner = REPO / "deploy" / "local" / "run.py"
    _run(
        [
            "-c",
            "import importlib.util, sys; from pathlib import Path\n"
            "spec = importlib.util.spec_from_file_location('run', sys.argv[1])\n"
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
            "module.suite_environment(Path(sys.argv[2]), 20000, '127.0.0.1')",
            str(runner),
            str(var),
        ],
        {},
        tmp_path,
    )
    assert (var / "keys" / "internal-secret").is_file()
    assert (var / "keys" / "storage-grant.key").is_file()
    assert _loose(var) == {}
