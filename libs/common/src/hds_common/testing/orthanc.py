"""A real archive for tests: Debian's Orthanc, started with its own configuration in a
private network namespace, to tell whether files import without rejection.

Orthanc (as packaged) listens on all addresses and has no setting to bind one, so it
runs inside ``unshare --net``: a new network namespace with only its own loopback,
unreachable from anywhere else, gone when the last process in it exits. The system
service is never involved. Inside, this module runs as a script: it checks that the
namespace has no interface but ``lo``, starts Orthanc on it with storage and index in a
temporary folder (no DICOM server, no remote access), posts every file to
``POST /instances`` and prints one JSON line per file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

__all__ = ["ORTHANC_BINARY", "OrthancVerdict", "import_into_orthanc"]

ORTHANC_BINARY = "/usr/sbin/Orthanc"
# Any port is free in a namespace of its own.
_HTTP_PORT = 8042
_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class OrthancVerdict:
    path: str
    status: int
    answer: dict[str, object]

    @property
    def accepted(self) -> bool:
        return self.status == 200 and self.answer.get("Status") in ("Success", "AlreadyStored")


def import_into_orthanc(paths: list[Path], *, timeout: float = 300.0) -> list[OrthancVerdict]:
    """Import ``paths`` (DICOM files) into a fresh Orthanc; one verdict per file."""
    if not Path(ORTHANC_BINARY).exists():
        raise RuntimeError(f"{ORTHANC_BINARY} is missing: `make tools` installs Debian's orthanc")
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeError("unshare (util-linux) is needed to give Orthanc its own network")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(str(path) for path in paths))
    try:
        result = subprocess.run(
            [unshare, "--net", "--", sys.executable, __file__, listing.name],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        Path(listing.name).unlink()
    if result.returncode != 0:
        raise RuntimeError(f"the Orthanc run failed ({result.returncode}): {result.stderr}")
    verdicts = []
    for line in result.stdout.splitlines():
        record = json.loads(line)
        verdicts.append(OrthancVerdict(record["path"], record["status"], record["answer"]))
    return verdicts


def _only_loopback() -> None:
    links = subprocess.run(
        ["ip", "-o", "link", "show"], capture_output=True, text=True, check=True
    ).stdout
    names = [line.split(":")[1].strip() for line in links.splitlines() if line.strip()]
    if names != ["lo"]:
        raise SystemExit(f"not in a private network namespace (interfaces: {names})")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def _run_inside(listing: Path) -> None:
    _only_loopback()
    paths = [line for line in listing.read_text().splitlines() if line]
    with tempfile.TemporaryDirectory(prefix="orthanc-") as folder:
        root = Path(folder)
        config = {
            "Name": "hds-test-archive",
            "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "index"),
            "HttpServerEnabled": True,
            "HttpPort": _HTTP_PORT,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": False,
            "Plugins": [],
            "StorageCompression": False,
        }
        (root / "orthanc.json").write_text(json.dumps(config))
        log = (root / "orthanc.log").open("wb")
        orthanc = subprocess.Popen(
            [ORTHANC_BINARY, str(root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT
        )
        base = f"http://127.0.0.1:{_HTTP_PORT}"
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                deadline = time.monotonic() + _START_TIMEOUT
                while True:
                    if orthanc.poll() is not None:
                        raise SystemExit((root / "orthanc.log").read_text(errors="replace"))
                    try:
                        if client.get("/system").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise SystemExit("Orthanc did not answer in time")
                    time.sleep(0.2)
                for path in paths:
                    response = client.post("/instances", content=Path(path).read_bytes())
                    try:
                        answer = response.json()
                    except ValueError:
                        answer = {"body": response.text}
                    if not isinstance(answer, dict):
                        answer = {"body": answer}
                    record = {"path": path, "status": response.status_code, "answer": answer}
                    print(json.dumps(record), flush=True)
        finally:
            orthanc.terminate()
            try:
                orthanc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                orthanc.kill()
                orthanc.wait()
            log.close()


if __name__ == "__main__":
    _run_inside(Path(sys.argv[1]))
