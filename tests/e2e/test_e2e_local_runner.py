"""`make run`: the embedded default (SQLite, filesystem blobs, generated keys) comes up
ready, `hds publish` works against it with no set-up, and Ctrl-C stops everything."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from hds_common.testing.dicom import make_pdf, make_study, write_study
from hds_common.testing.ports import free_port_block
from tests.e2e.support import REPO

pytestmark = pytest.mark.slow


def test_local_suite_runs_publishes_and_stops(tmp_path: Path) -> None:
    base_port = free_port_block()
    gateway = f"http://127.0.0.1:{base_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HDS_")}
    runner = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "deploy/local/run.py"),
            "--var",
            str(tmp_path / "var"),
            "--base-port",
            str(base_port),
            "--ready-timeout",
            "30",
        ],
        cwd=tmp_path,
        env=env,
        # The usual umask, under which files are created world-readable by default.
        preexec_fn=lambda: os.umask(0o022),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = []
        assert runner.stdout is not None
        for line in runner.stdout:
            banner.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(banner)
        assert "HDS suite is running." in text, text
        assert f"gateway (the only public entry): {gateway}" in text

        readiness = httpx.get(f"{gateway}/readyz", timeout=10)
        assert readiness.status_code == 200
        assert readiness.json()["checks"] == {
            "auth": "ok",
            "codes": "ok",
            "storage": "ok",
            "dlx": "ok",
        }
        credentials = json.loads((tmp_path / "var/demo-credentials.json").read_text())
        assert credentials["role"] == "institution"
        assert credentials["password"] in text

        # Embedded default: SQLite files, filesystem blobs and generated keys under var/.
        for name in ("auth.db", "codes.db", "storage.db", "keys/storage-grant.key"):
            assert (tmp_path / "var" / name).exists(), name

        study = tmp_path / "study"
        write_study(study, make_study(3, seed=7))
        (study / "report.pdf").write_bytes(make_pdf("local runner"))
        published = subprocess.run(
            [
                str(Path(sys.executable).parent / "hds"),
                "publish",
                str(study),
                "--birth-date",
                "19700101",
                "--gateway",
                gateway,
                "--json",
            ],
            cwd=tmp_path,  # credentials come from ./var/demo-credentials.json
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert published.returncode == 0, published.stderr
        code = json.loads(published.stdout)["code"]
        token = httpx.post(
            f"{gateway}/dlx/v1/tokentfa/{code}",
            json={"tfaAnswer": [{"questionId": "1", "answer": "19700101"}]},
            timeout=30,
        )
        assert token.status_code == 200
        listing = httpx.get(
            f"{gateway}/dlx/v1/list", headers={"Authorization": f"Bearer {token.text}"}, timeout=30
        )
        assert listing.status_code == 200
        assert len(listing.json()["dataItem"]) == 2
        # Blobs on the filesystem are ciphertext: the PDF marker is nowhere on disk.
        for path in (tmp_path / "var/blobs").rglob("*"):
            if path.is_file():
                assert b"local runner" not in path.read_bytes()
    finally:
        children = psutil.Process(runner.pid).children(recursive=True)
        runner.send_signal(signal.SIGINT)
        exit_code = runner.wait(timeout=30)
    assert exit_code == 0
    deadline = time.monotonic() + 10
    while any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children):
        assert time.monotonic() < deadline, "services still running after Ctrl-C"
        time.sleep(0.1)
    # Databases, keys, blobs and mails are the owner's alone, whatever the umask.
    modes = {
        str(path.relative_to(tmp_path)): stat.S_IMODE(path.stat().st_mode)
        for path in [tmp_path / "var", *(tmp_path / "var").rglob("*")]
    }
    assert {name: oct(mode) for name, mode in modes.items() if mode & 0o077} == {}
