"""The embedded default: every service as its own process on localhost.

``make run`` calls this. It prepares ``./var`` (SQLite files, filesystem blob store,
generated keys and secrets, mail outbox), migrates the databases, creates the demo
institution, starts the five services, waits until the gateway reports them ready and
prints where to reach the suite. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from hds_common.crypto import b64e, public_key_to_bytes
from hds_common.key_provider import FileKeyProvider

SERVICES = ("auth", "codes", "storage", "dlx", "gateway")
MIGRATED = ("auth", "codes", "storage")
PORT_OFFSETS = {"gateway": 0, "auth": 1, "codes": 2, "storage": 3, "dlx": 4}


def _secret_file(path: Path) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _private_directory(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A ./var from an earlier version may be world-readable: tighten it.
    path.chmod(0o700)


def suite_environment(var: Path, base_port: int, host: str) -> dict[str, str]:
    """The suite's settings for ``var``; creates ``var`` and what lives in it, readable by
    its owner only (0700 directories, 0600 files)."""
    keys = var / "keys"
    for directory in (var, keys, var / "blobs", var / "outbox"):
        _private_directory(directory)
    # The embedded default keeps its keys in files under var/keys (HDS_KEY_PROVIDER=file).
    grant_key = FileKeyProvider().x25519_private_key(str(keys / "storage-grant.key"))
    port = {name: base_port + offset for name, offset in PORT_OFFSETS.items()}
    env = {
        "HDS_ENVIRONMENT": "development",
        "HDS_KEY_PROVIDER": "file",
        "HDS_INTERNAL_SECRET": _secret_file(keys / "internal-secret"),
        "HDS_GRANT_PUBLIC_KEY": b64e(public_key_to_bytes(grant_key.public_key())),
        "HDS_PUBLIC_BASE_URL": f"http://{host}:{port['gateway']}",
        "HDS_AUTH_URL": f"http://{host}:{port['auth']}",
        "HDS_CODES_URL": f"http://{host}:{port['codes']}",
        "HDS_STORAGE_URL": f"http://{host}:{port['storage']}",
        "HDS_DLX_URL": f"http://{host}:{port['dlx']}",
        "HDS_AUTH_DATABASE_URL": f"sqlite:///{var / 'auth.db'}",
        "HDS_CODES_DATABASE_URL": f"sqlite:///{var / 'codes.db'}",
        "HDS_STORAGE_DATABASE_URL": f"sqlite:///{var / 'storage.db'}",
        "HDS_AUTH_SIGNING_KEY_DIR": str(keys / "auth"),
        "HDS_AUTH_OUTBOX_DIR": str(var / "outbox"),
        "HDS_CODES_LOOKUP_SECRET_FILE": str(keys / "codes-lookup.key"),
        "HDS_STORAGE_BLOB_URL": str(var / "blobs"),
        "HDS_STORAGE_GRANT_PRIVATE_KEY_FILE": str(keys / "storage-grant.key"),
    }
    for name in SERVICES:
        env[f"HDS_{name.upper()}_HOST"] = host
        env[f"HDS_{name.upper()}_PORT"] = str(port[name])
        if name in MIGRATED:
            # Migrations run once here, before the services start, not in each process.
            env[f"HDS_{name.upper()}_MIGRATE_ON_START"] = "false"
    return env


def wait_ready(url: str, timeout: float, processes: dict[str, subprocess.Popen[bytes]]) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as exc:
            last = json.load(exc)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise SystemExit(f"the suite was not ready after {timeout:.0f} s: {json.dumps(last)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--var", type=Path, default=Path("var"), help="state directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--base-port", type=int, default=8000, help="gateway port; others +1..+4")
    parser.add_argument("--ready-timeout", type=float, default=60.0)
    args = parser.parse_args()

    # Everything the suite writes under ./var (databases, keys, blobs, mails) and every
    # process started here: readable by this user only.
    os.umask(0o077)
    var: Path = args.var.resolve()
    env = {
        **os.environ,
        **suite_environment(var, args.base_port, args.host),
        # The one account whose password is written down for the developer; the settings
        # refuse it outside development. Everyone else is invited.
        "HDS_AUTH_DEMO_INSTITUTION": "true",
    }
    python = sys.executable

    for name in MIGRATED:
        subprocess.run([python, "-m", f"hds_{name}", "migrate"], env=env, check=True)
    credentials_file = var / "demo-credentials.json"
    subprocess.run(
        [python, "-m", "hds_auth", "ensure-demo", "--output", str(credentials_file)],
        env=env,
        check=True,
    )

    processes: dict[str, subprocess.Popen[bytes]] = {}

    def stop_services() -> None:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 10
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()

    def stop(*_: object) -> None:
        stop_services()
        raise SystemExit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name in SERVICES:
        processes[name] = subprocess.Popen([python, "-m", f"hds_{name}", "serve"], env=env)

    gateway = env["HDS_PUBLIC_BASE_URL"]
    try:
        readiness = wait_ready(f"{gateway}/readyz", args.ready_timeout, processes)
    except SystemExit:
        # Not ready in time: take the services down too instead of leaving them running.
        stop_services()
        raise
    credentials = json.loads(credentials_file.read_text())
    print(
        "\nHDS suite is running.\n"
        f"  gateway (the only public entry): {gateway}\n"
        f"  readiness: {gateway}/readyz -> {readiness.get('status')}\n"
        f"  API documentation: {gateway}/docs (merged OpenAPI: {gateway}/openapi.json)\n"
        f"  DLX: {gateway}/dlx/v1/api_info\n"
        f"  demo institution: {credentials['email']} / {credentials['password']}"
        f" (also in {credentials_file})\n"
        f"  mail outbox: {var / 'outbox'}\n"
        "  publish a folder:  .venv/bin/hds publish PATH --birth-date YYYYMMDD\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} exited with code {process.returncode}; stopping", flush=True)
                stop()
        time.sleep(1)


if __name__ == "__main__":
    main()
