"""The operator cannot open an institution's packages.

An institution is onboarded by invitation through the real processes (the command line
invites, the invitee accepts the mailed link through the gateway) and publishes a
package. Then the test plays the operator: it takes a copy of every database, every blob,
every file under the keys directory, the configuration, the captured logs (the services'
and the command line's) and the mail outbox. The invitation mail went to the institution
over SMTP, which is not the operator's. In that copy the password, the recovery code and
the invitation link appear nowhere, and an offline attack that tries every string the
copy holds against the institution's key slots opens neither the private key nor the
package. The control gives the same attack the copy plus the password or the recovery
code, as the old ``create-account`` printed them to the operator, and it opens the
package: so the attack is real and the test can fail.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aioboto3
import asyncpg
import pytest

from hds_auth.userkeys import KeySlot, WrongSecret, normalise_recovery_code, unwrap_slot
from hds_common.crypto import (
    IntegrityError,
    decrypt_bytes,
    load_or_create_private_key,
    private_key_to_bytes,
)
from hds_storage.keys import open_slot
from tests.e2e.support import RunningSuite, publish

pytestmark = pytest.mark.slow

BIRTH_DATE = "19610704"
# What a leaked secret could look like anywhere in the copy: runs of printable characters
# without spaces or quotes, at least as long as the shortest password the suite accepts.
CANDIDATE = re.compile(rb"[!#-&(-~]{10,200}")
DATABASES = ("auth", "codes", "storage")
RECOVERY_FORM = re.compile(r"[0-9A-HJKMNP-TV-Z]{25}")
GENERATED = re.compile(
    r"(request_id=)?[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"|\d{4}-\d\d-\d\d[T ][\d:.]+(Z|[+-]\d\d:?\d\d)?"
)


@dataclass
class OperatorCopy:
    """Everything the operator holds, as bytes by where it came from."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "db.table"
    blobs: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # keys, logs, outbox, config

    def texts(self) -> Iterable[tuple[str, bytes]]:
        for name, data in self.files.items():
            yield name, data
        for name, data in self.blobs.items():
            yield f"blob {name}", data
        for table, rows in self.rows.items():
            for row in rows:
                for column, value in row.items():
                    yield f"{table}.{column}", _as_bytes(value)

    def candidates(self) -> list[str]:
        """Every distinct string in the copy that could be a password or recovery code:
        runs of printable characters anywhere, every string value of a JSON log line and
        every line of the other text files (a password may hold spaces). Left out are
        only the identifiers the services generate themselves (request ids, UUIDs, times),
        which no holder chose."""
        found: set[str] = set()
        for _, data in self.texts():
            for match in CANDIDATE.finditer(data):
                found.add(match.group().decode("latin-1"))
        for name, data in self.files.items():
            if name.startswith("keys/") or name.startswith("blobs/"):
                continue
            for line in data.decode("utf-8", "replace").splitlines():
                found.update(_line_strings(line))
        return sorted(text for text in found if not GENERATED.fullmatch(text))

    def account(self, email: str) -> dict[str, Any]:
        [row] = [r for r in self.rows["auth.accounts"] if r["email"] == email]
        return row


def _line_strings(line: str) -> set[str]:
    line = line.strip()
    try:
        record = json.loads(line)
    except ValueError:
        return {line} if 10 <= len(line) <= 200 else set()
    values = record.values() if isinstance(record, dict) else []
    return {v.strip() for v in values if isinstance(v, str) and 10 <= len(v.strip()) <= 200}


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


async def _copy_databases(suite: RunningSuite, copy: OperatorCopy) -> None:
    for name in DATABASES:
        connection = await asyncpg.connect(suite.env[f"HDS_{name.upper()}_DATABASE_URL"])
        try:
            tables = await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
            for table in tables:
                records = await connection.fetch(f'SELECT * FROM "{table["table_name"]}"')
                copy.rows[f"{name}.{table['table_name']}"] = [dict(r) for r in records]
        finally:
            await connection.close()


async def _copy_bucket(suite: RunningSuite, copy: OperatorCopy) -> None:
    bucket = urlsplit(suite.env["HDS_STORAGE_BLOB_URL"]).netloc
    async with aioboto3.Session().client("s3", **suite.s3.client_kwargs()) as s3:
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                answer = await s3.get_object(Bucket=bucket, Key=item["Key"])
                async with answer["Body"] as body:
                    copy.blobs[item["Key"]] = await body.read()


def operator_copy(suite: RunningSuite) -> OperatorCopy:
    copy = OperatorCopy()
    asyncio.run(_copy_databases(suite, copy))
    asyncio.run(_copy_bucket(suite, copy))
    for path in sorted(suite.var.rglob("*")):
        if path.is_file():
            copy.files[str(path.relative_to(suite.var))] = path.read_bytes()
    config = "\n".join(f"{k}={v}" for k, v in sorted(suite.env.items()) if k.startswith("HDS_"))
    copy.files["configuration.env"] = config.encode()
    return copy


def _try_slot(account: dict[str, Any], purpose: str, secret: str) -> bytes | None:
    slot = KeySlot(
        account[f"{purpose}_key_salt"],
        account[f"{purpose}_key_kdf"],
        account[f"{purpose}_wrapped_key"],
    )
    if purpose == "recovery":
        secret = normalise_recovery_code(secret)
    try:
        return asyncio.run(unwrap_slot(slot, secret, purpose=purpose, account_id=account["id"]))
    except WrongSecret:
        return None


def open_private_key(copy: OperatorCopy, email: str, candidates: list[str]) -> bytes | None:
    """The offline attack on the account's two key slots (Argon2id with the stored
    parameters), every candidate in both, on both cores."""
    account = copy.account(email)
    attempts = [("password", secret) for secret in candidates]
    # The recovery code has a fixed form: only what normalises to it can be one.
    attempts += [
        ("recovery", secret)
        for secret in candidates
        if RECOVERY_FORM.fullmatch(normalise_recovery_code(secret))
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for opened in pool.map(lambda a: _try_slot(account, *a), attempts):
            if opened is not None:
                pool.shutdown(wait=False, cancel_futures=True)
                return opened
    return None


def open_packages(copy: OperatorCopy, account_id: uuid.UUID, private_key: bytes) -> list[bytes]:
    """Every object of every package the account holds a key slot of, decrypted."""
    plaintexts = []
    for slot in copy.rows["storage.key_slots"]:
        if str(slot["account_id"]) != str(account_id):
            continue
        package_key = open_slot(private_key, slot["package_id"], bytes(slot["sealed_key"]))
        objects = [
            *copy.rows["storage.instances"],
            *copy.rows["storage.documents"],
        ]
        for item in objects:
            if item["package_id"] != slot["package_id"]:
                continue
            [blob] = [data for key, data in copy.blobs.items() if key.endswith(item["blob_key"])]
            plaintexts.append(decrypt_bytes(package_key, item["id"], blob))
    return plaintexts


def test_the_operator_opens_no_package_of_an_invited_institution(
    suite: RunningSuite, tmp_path: Path
) -> None:
    from hds_common.testing.dicom import make_pdf, make_study, write_study

    email = f"operator-check-{uuid.uuid4().hex[:8]}@example.org"
    institution = suite.onboard(email, "institution", name="Radiologie Betreiberprobe")
    token = suite.invitation_token(email)
    marker = f"Betreiber^{uuid.uuid4().hex[:12]}"
    folder = tmp_path / "study"
    write_study(folder, make_study(2, patient_name=marker, patient_id="OP-1", seed=41))
    (folder / "befund.pdf").write_bytes(make_pdf(f"Befund {marker}"))
    published = publish(suite, folder, BIRTH_DATE, credentials=institution)
    assert published["dicom_files"] == 2

    copy = operator_copy(suite)
    assert copy.rows["auth.invitations"], "the copy holds the invitation rows"
    assert any(r["email"] == email for r in copy.rows["auth.accounts"])
    assert len(copy.blobs) >= 3
    assert any(name.startswith("keys/") for name in copy.files)
    assert "commands.log" in copy.files
    assert any(name.endswith(".log") and name != "commands.log" for name in copy.files)

    # Nothing that unlocks the key, or would let the operator accept in the invitee's
    # place, is anywhere in the copy.
    recovery = institution["recovery_code"]
    secrets = {
        "password": institution["password"],
        "recovery code": recovery,
        "recovery code, normalised": normalise_recovery_code(recovery),
        "invitation link": token,
        "patient name": marker,
    }
    for where, data in copy.texts():
        for what, secret in secrets.items():
            assert secret.encode() not in data, f"{what} in {where}"

    candidates = copy.candidates()
    assert len(candidates) > 50, "the attack tries what the copy holds"
    started = time.monotonic()
    assert open_private_key(copy, email, candidates) is None
    print(f"operator attack: {len(candidates)} candidates in {time.monotonic() - started:.1f} s")
    account_id = copy.account(email)["id"]
    assert any(str(s["account_id"]) == str(account_id) for s in copy.rows["storage.key_slots"])
    # Nor does any key the operator holds open the institution's key slots: the storage
    # grant key, and every key file's bytes taken as an X25519 private key.
    grant_key = load_or_create_private_key(suite.var / "keys" / "storage-grant.key")
    held = {private_key_to_bytes(grant_key)}
    for name, data in copy.files.items():
        if name.startswith("keys/") and len(data) >= 32:
            held |= {data[:32], data[-32:]}
    for candidate in held:
        with pytest.raises(IntegrityError):
            open_packages(copy, account_id, candidate)

    # Control: the old command line printed password and recovery code to the operator.
    # With either one among what the copy holds, the same attack opens the package.
    for leaked in (institution["password"], recovery):
        private_key = open_private_key(copy, email, [*candidates[:5], leaked])
        assert private_key is not None
        plaintexts = open_packages(copy, account_id, private_key)
        assert len(plaintexts) == 3
        assert any(marker.encode() in data for data in plaintexts)
