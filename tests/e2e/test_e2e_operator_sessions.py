"""The operator plays attacker against ended sessions.

With a copy of every database, every blob, every file under the keys directory, the
configuration, the logs and every token ever issued to a logged-out account (its access
and refresh tokens, and the DLX tokens of a revoked and of an expired code), the
operator tries offline to open the account's private key and any package key, with the
storage grant key and everything else it holds: nothing opens. The same attack run
while the sessions are live opens both, so the test can fail.

Not held by the operator, by the product's promise: the account's password and recovery
code, and the access codes with their birth dates (the institution, onboarded by
invitation, keeps its password to itself; its own live sessions are not this test's).
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from jose import jwt
from sqlalchemy import inspect, text

from hds_auth.opaque_tokens import parse_secret_token
from hds_auth.userkeys import WrongSecret, unwrap_refresh_slot
from hds_common.blobstore import blobstore_from_url
from hds_common.crypto import (
    CryptoError,
    b64d,
    hkdf_sha256,
    open_sealed,
    private_key_from_bytes,
    public_key_to_bytes,
    unwrap_key,
)
from hds_common.db import create_engine
from hds_common.testing.dicom import make_pdf, make_study, write_study
from hds_storage.keys import MetaCipher, open_slot
from tests.e2e.support import (
    RunningSuite,
    bearer,
    dlx_token,
    institution_headers,
    log_in,
    publish,
    register_patient,
)

pytestmark = pytest.mark.slow

BIRTH_DATE = "19750909"
PASSWORD = "a long and unusual passphrase 9"
# The documented constructions, rebuilt from primitives as an operator would: grants
# (sealed to storage; the first releases' version 1 carried the key itself, version 2 a
# key session's id and secret) and key sessions (the key wrapped under HKDF(secret)).
GRANT_CONTEXTS = (b"hds/grant/v1", b"hds/grant/v2")
SESSION_KEY_INFO = b"hds/key-session/v1"


def open_any_grant(grant_key: Any, text: str) -> dict[str, Any] | None:
    for context in GRANT_CONTEXTS:
        try:
            body: dict[str, Any] = json.loads(open_sealed(grant_key, b64d(text), context))
        except (CryptoError, ValueError):
            continue
        return body
    return None


def unwrap_session(secret: bytes, row: dict[str, Any]) -> bytes:
    kek = hkdf_sha256(secret, salt=None, info=SESSION_KEY_INFO)
    aad = f"{row['id']}\x00{row['kind']}\x00{row['subject']}".encode()
    return unwrap_key(kek, bytes(row["wrapped_key"]), aad)


Rows = list[dict[str, Any]]


@dataclass
class Holdings:
    """What the operator holds: tables of every database, files, blobs, tokens."""

    tables: dict[str, Rows] = field(default_factory=dict)  # "db.table" -> rows
    files: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)

    def rows(self, table: str) -> Rows:
        return self.tables.get(table, [])


async def _dump(url: str, name: str, into: dict[str, Rows]) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
            for table in names:
                result = await connection.execute(text(f'SELECT * FROM "{table}"'))
                into[f"{name}.{table}"] = [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def _blobs(url: str) -> dict[str, bytes]:
    store = blobstore_from_url(url)
    async with store:
        return {info.key: await store.get_bytes(info.key) async for info in store.list("")}


def take_copy(suite: RunningSuite, tokens: list[str]) -> Holdings:
    """A copy of everything the operator has, taken now."""
    holdings = Holdings(tokens=list(tokens))

    async def copy() -> None:
        for name in ("auth", "codes", "storage"):
            await _dump(suite.env[f"HDS_{name.upper()}_DATABASE_URL"], name, holdings.tables)
        holdings.blobs = await _blobs(suite.env["HDS_STORAGE_BLOB_URL"])

    asyncio.run(copy())
    for path in suite.var.rglob("*"):
        if path.is_file():
            holdings.files[str(path)] = path.read_bytes()
    config = {k: v for k, v in suite.env.items() if k.startswith("HDS_")}
    holdings.files["environment"] = json.dumps(config).encode()
    return holdings


def _bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    return None


def _decodings(word: bytes) -> list[bytes]:
    """A word of a file read as base64url and as hex, where it is either."""
    decoded = []
    try:
        decoded.append(b64d(word))
    except ValueError:
        pass
    try:
        decoded.append(bytes.fromhex(word.decode("ascii")))
    except (ValueError, UnicodeDecodeError):
        pass
    return decoded


def _candidate_secrets(holdings: Holdings) -> set[bytes]:
    """Every 32-byte value the operator can lift from files and the configuration."""
    found: set[bytes] = set()
    for content in holdings.files.values():
        if len(content) == 32:
            found.add(content)
        for word in content.replace(b'"', b" ").replace(b",", b" ").split():
            for raw in _decodings(word):
                if len(raw) == 32:
                    found.add(raw)
    return found


def attack(holdings: Holdings, grant_key_file: str) -> tuple[set[bytes], set[bytes]]:
    """The operator's best offline effort: ``(user private keys, package keys)`` opened."""
    grant_key = private_key_from_bytes(b64d(holdings.files[grant_key_file].strip()))
    secrets: set[bytes] = _candidate_secrets(holdings)
    user_keys: set[bytes] = set()
    package_keys: set[bytes] = set()

    sessions = holdings.rows("storage.key_sessions")
    refresh_rows = holdings.rows("auth.refresh_tokens")
    for token in holdings.tokens:
        parsed = parse_secret_token(token)
        if parsed is not None:  # a refresh token: its row kept the key wrapped
            secrets.add(parsed[1])
            for row in refresh_rows:
                try:
                    user_keys.add(
                        unwrap_refresh_slot(bytes(row["wrapped_user_key"]), parsed[1], row["id"])
                    )
                except (WrongSecret, CryptoError, ValueError):
                    pass
            continue
        claims = jwt.get_unverified_claims(token)
        if "grant" not in claims:
            continue
        grant = open_any_grant(grant_key, claims["grant"])
        if grant is None:
            continue
        if "key" in grant:  # a grant that carries the key itself
            (user_keys if grant["kind"] == "user" else package_keys).add(b64d(grant["key"]))
        if "secret" in grant:
            secrets.add(b64d(grant["secret"]))
    for row in sessions:
        for secret in secrets:
            try:
                key = unwrap_session(secret, row)
            except (CryptoError, ValueError):
                continue
            (user_keys if row["kind"] == "user" else package_keys).add(key)

    # Every candidate tried as a user key on every key slot and as a package key.
    for candidate in user_keys | secrets:
        for slot in holdings.rows("storage.key_slots"):
            try:
                package_keys.add(
                    open_slot(candidate, slot["package_id"], bytes(slot["sealed_key"]))
                )
            except (CryptoError, ValueError):
                pass
    packages = holdings.rows("storage.packages")
    proven = {
        key
        for key in package_keys | secrets
        for package in packages
        if MetaCipher(key, package["id"]).check(package["id"], bytes(package["key_check"]))
    }
    return user_keys, proven


def _encodings(key: bytes) -> list[bytes]:
    return [
        key,
        key.hex().encode(),
        base64.b64encode(key).rstrip(b"="),
        base64.urlsafe_b64encode(key).rstrip(b"="),
    ]


def assert_nowhere(holdings: Holdings, keys: set[bytes]) -> None:
    """No key appears, in any usual encoding, in anything the operator holds."""
    haystacks: list[bytes] = [*holdings.files.values(), *holdings.blobs.values()]
    haystacks += [token.encode() for token in holdings.tokens]
    for rows in holdings.tables.values():
        for row in rows:
            for value in row.values():
                raw = _bytes(value)
                haystacks.append(raw if raw is not None else str(value).encode())
    for key in keys:
        for needle in _encodings(key):
            assert not any(needle in haystack for haystack in haystacks)


def _publish(suite: RunningSuite, folder: Path, seed: int) -> dict[str, Any]:
    write_study(folder, make_study(2, series=1, patient_name="Betreiber^Otto", seed=seed))
    (folder / "befund.pdf").write_bytes(make_pdf("Befund Betreiber"))
    return publish(suite, folder, BIRTH_DATE)


def test_nothing_the_operator_holds_opens_a_key_once_the_sessions_end(
    suite: RunningSuite, tmp_path: Path
) -> None:
    client = httpx.Client(base_url=suite.gateway_url, timeout=60)
    grant_key_file = suite.env["HDS_STORAGE_GRANT_PRIVATE_KEY_FILE"]
    issued: list[str] = []  # every token issued to the patient and for its codes

    imported = _publish(suite, tmp_path / "imported", seed=41)
    revoked = _publish(suite, tmp_path / "revoked", seed=42)
    expired = _publish(suite, tmp_path / "expired", seed=43)

    patient = register_patient(suite, client, PASSWORD)
    first = log_in(client, patient["email"], PASSWORD)
    refreshed = client.post("/auth/v1/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    issued += [first["access_token"], first["refresh_token"]]
    issued += [second["access_token"], second["refresh_token"]]
    account = bearer(second["access_token"])
    answer = client.post(
        "/codes/v1/import",
        json={"code": imported["code"], "birth_date": BIRTH_DATE},
        headers=account,
    )
    assert answer.status_code == 200, answer.text
    public_key = b64d(client.get("/auth/v1/me", headers=account).json()["public_key"])
    dlx_tokens = [dlx_token(client, revoked["code"], BIRTH_DATE)]
    dlx_tokens.append(dlx_token(client, expired["code"], BIRTH_DATE))
    issued += dlx_tokens
    for token in dlx_tokens:
        assert client.get("/dlx/v1/list", headers=bearer(token)).status_code == 200

    # Control: while the sessions are live the very same attack opens the keys.
    live_users, live_packages = attack(take_copy(suite, issued), grant_key_file)
    assert [public_key_to_bytes(private_key_from_bytes(k).public_key()) for k in live_users] == [
        public_key
    ]
    # The imported package (through the account's key slot) and both DLX packages.
    assert len(live_packages) == 3

    # The sessions end: logout, a revoked code, an expired code.
    institution = institution_headers(suite, client)
    assert (
        client.post("/auth/v1/logout", json={"refresh_token": second["refresh_token"]}).status_code
        == 204
    )
    for code, event in ((revoked, "revoke"), (expired, "expire")):
        ended = client.post(f"/codes/v1/codes/{code['code_id']}/{event}", headers=institution)
        assert ended.status_code == 200, ended.text

    holdings = take_copy(suite, issued)
    users, packages = attack(holdings, grant_key_file)
    assert users == set()
    assert packages == set()
    # Nor do the keys sit anywhere in the clear or in a usual encoding.
    assert_nowhere(holdings, live_users | live_packages)
    # The attack had all it needed: every token, the grant key, the rows of the sessions.
    assert len(holdings.tokens) == 6
    assert holdings.rows("storage.key_slots")
    assert uuid.UUID(patient["id"])
