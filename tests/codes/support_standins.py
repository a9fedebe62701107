"""Stand-ins of the neighbours of the access code service, for its tests.

Small FastAPI apps serving only the routes codes calls, with the contract of
docs/architecture.md and real cryptography (grants are sealed and opened with X25519):

* ``stand_in_identity``: JWKS, ``GET /internal/v1/accounts/{id}``, ``POST /auth/v1/login``.
* ``stand_in_storage``: ``GET /internal/v1/packages/{id}/key``,
  ``POST /internal/v1/packages/{id}/slots``, key sessions, retention, and the ingest
  routes ``hds publish`` uses.

``Neighbourhood`` is what they know and what they were asked.
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

import pydicom
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile as StarletteUploadFile

from hds_common.crypto import (
    SESSION_SECRET_SIZE,
    Grant,
    GrantError,
    b64e,
    generate_package_key,
    open_grant,
    open_session_key,
    public_key_to_bytes,
    seal_grant,
)
from hds_common.errors import PROBLEM_CONTENT_TYPE
from hds_common.service_auth import SERVICE_TOKEN_HEADER, verify_service_token
from hds_common.testing.tokens import TestIssuer
from hds_common.tokens import ACCOUNT_AUDIENCE, TokenClaims, TokenVerifier, bearer_token

INTERNAL_SECRET = "codes-tests-internal-secret"
PUBLIC_BASE = "https://portal.example.org"
AUTH_URL = "http://auth.internal"
STORAGE_URL = "http://storage.internal"


def _problem(status: int, slug: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:hds:problem:{slug}", "title": slug, "status": status, "detail": detail}
    return JSONResponse({**body, **extra}, status_code=status, media_type=PROBLEM_CONTENT_TYPE)


# -- neighbours' state ------------------------------------------------------------------


@dataclass
class Account:
    id: str
    email: str
    password: str
    role: str
    name: str
    code_validity_days: int | None
    user_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))


@dataclass
class Package:
    id: str
    owner: str
    key: bytes
    complete: bool = False
    instances: list[bytes] = field(default_factory=list)
    documents: list[bytes] = field(default_factory=list)
    # The package's patient (storage keeps one per package): from the first DICOM file or
    # the first PDF's form fields.
    patient: dict[str, str] | None = None


@dataclass
class SlotCall:
    package_id: str
    account_id: str
    # The package key as storage opened it from the sealed key it was sent.
    key: bytes


@dataclass
class StandInKeySession:
    kind: str
    subject: str
    tag: str | None
    key: bytes
    expires_at: int


@dataclass
class Neighbourhood:
    """What the stand-ins know and what they were asked."""

    issuer: TestIssuer
    storage_private_key: X25519PrivateKey
    accounts: dict[str, Account] = field(default_factory=dict)
    packages: dict[str, Package] = field(default_factory=dict)
    slot_calls: list[SlotCall] = field(default_factory=list)
    key_requests: int = 0
    # Set to make the slots route answer 507 like storage in manual deletion mode.
    quota_exceeded: bool = False
    # Expiries reported for retention, per package; retired packages refuse them.
    retention: dict[str, list[dt.datetime]] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)
    key_sessions: dict[str, StandInKeySession] = field(default_factory=dict)
    # Bodies of the calls that ended key sessions.
    ended: list[dict[str, Any]] = field(default_factory=list)

    def session_key(self, grant_text: str) -> bytes:
        """The key the live key session named by a grant holds (what storage opens)."""
        grant = open_grant(self.storage_private_key, grant_text)
        return self.key_sessions[grant.session_id].key

    @property
    def grant_public_key(self) -> str:
        return b64e(public_key_to_bytes(self.storage_private_key.public_key()))

    def user_grant(self, account: Account, *, ttl: int = 900) -> str:
        session_id = secrets.token_hex(16)
        expires_at = int(time.time()) + ttl
        self.key_sessions[session_id] = StandInKeySession(
            "user", account.id, None, account.user_key, expires_at
        )
        return seal_grant(
            self.storage_private_key.public_key(),
            Grant(
                kind="user",
                subject=account.id,
                session_id=session_id,
                secret=secrets.token_bytes(SESSION_SECRET_SIZE),
                expires_at=expires_at,
            ),
        )

    def token(self, account: Account, *, grant: bool = True) -> str:
        if not grant:
            return self.issuer.mint(account.id, roles=[account.role])
        user_grant = self.user_grant(account)
        session_id = open_grant(self.storage_private_key, user_grant).session_id
        return self.issuer.mint(account.id, roles=[account.role], grant=user_grant, ksid=session_id)


def _service_caller(token: Annotated[str | None, Header(alias=SERVICE_TOKEN_HEADER)] = None) -> str:
    return verify_service_token(INTERNAL_SECRET, token)


def stand_in_identity(hood: Neighbourhood) -> FastAPI:
    """Stand-in of the identity service (only what codes and ``hds publish`` call)."""
    app = FastAPI(title="identity stand-in")

    @app.get("/.well-known/jwks.json")
    async def jwks() -> dict[str, Any]:
        return hood.issuer.jwks

    @app.get("/internal/v1/accounts/{account_id}")
    async def account(account_id: str, _: Annotated[str, Depends(_service_caller)]) -> Any:
        found = hood.accounts.get(account_id)
        if found is None:
            return _problem(404, "account-not-found", "no such account")
        return {
            "id": found.id,
            "email": found.email,
            "role": found.role,
            "name": found.name,
            "default_code_validity_days": found.code_validity_days,
            "public_key": b64e(public_key_to_bytes(X25519PrivateKey.generate().public_key())),
            "quota_bytes": 1 << 30,
            "deletion_mode": "manual",
            "notifications": True,
            "accept_shares": True,
        }

    @app.post("/auth/v1/login")
    async def login(request: Request) -> Any:
        body = await request.json()
        for candidate in hood.accounts.values():
            if candidate.email == body.get("email") and candidate.password == body.get("password"):
                return {
                    "access_token": hood.token(candidate),
                    "token_type": "bearer",
                    "expires_in": 900,
                }
        return _problem(401, "invalid-credentials", "wrong e-mail or password")

    return app


def stand_in_storage(hood: Neighbourhood) -> FastAPI:
    """Stand-in of the storage service: package keys, key slots and the ingest routes."""
    app = FastAPI(title="storage stand-in")
    verifier = TokenVerifier(issuer=hood.issuer.issuer, keys=hood.issuer.keys())

    async def institution(request: Request) -> TokenClaims:
        claims = await verifier.verify(
            bearer_token(request.headers.get("authorization")), audience=ACCOUNT_AUDIENCE
        )
        assert claims.has_role("institution")
        return claims

    @app.get("/internal/v1/packages/{package_id}/key")
    async def package_key(
        package_id: str,
        _: Annotated[str, Depends(_service_caller)],
        grant: Annotated[str, Header(alias="X-HDS-Grant")],
    ) -> Any:
        hood.key_requests += 1
        try:
            opened = open_grant(hood.storage_private_key, grant)
        except GrantError:
            return _problem(401, "grant-invalid", "grant cannot be opened")
        package = hood.packages.get(package_id)
        if package is None:
            return _problem(404, "package-not-found", "no such package")
        if opened.kind != "user" or opened.subject != package.owner:
            return _problem(403, "forbidden", "not the publishing institution")
        return {"package_key": b64e(package.key)}

    @app.put("/internal/v1/packages/{package_id}/retention", response_model=None)
    async def retention(
        package_id: str, request: Request, _: Annotated[str, Depends(_service_caller)]
    ) -> Response:
        if package_id not in hood.packages:
            return _problem(404, "package-not-found", "no such package")
        if package_id in hood.retired:
            return _problem(409, "package-retired", "deleted after its retention period")
        body = await request.json()
        valid_until = dt.datetime.fromisoformat(body["codes_valid_until"])
        hood.retention.setdefault(package_id, []).append(valid_until)
        return Response(status_code=204)

    @app.post("/internal/v1/packages/{package_id}/slots")
    async def add_slot(
        package_id: str, request: Request, _: Annotated[str, Depends(_service_caller)]
    ) -> Any:
        body = await request.json()
        package = hood.packages.get(package_id)
        if package is None:
            return _problem(404, "package-not-found", "no such package")
        try:
            key = open_session_key(
                hood.storage_private_key,
                body["sealed_package_key"],
                kind="package",
                subject=package_id,
            )
        except GrantError:
            return _problem(403, "grant-invalid", "the key is not sealed for this package")
        if key != package.key:
            return _problem(403, "forbidden", "the key does not open this package")
        if hood.quota_exceeded:
            return _problem(
                507, "quota-exceeded", "the studies do not fit into your quota", needed_bytes=1234
            )
        hood.slot_calls.append(SlotCall(package_id, body["account_id"], key))
        return {
            "package_id": package_id,
            "studies": 1 if package.instances or not package.documents else 0,
            "documents": len(package.documents),
            "bytes": sum(map(len, package.instances)) + sum(map(len, package.documents)),
        }

    @app.post("/internal/v1/key-sessions", status_code=201)
    async def start_key_session(
        request: Request, _: Annotated[str, Depends(_service_caller)]
    ) -> Any:
        body = await request.json()
        kind, subject = body["kind"], body["subject"]
        key = open_session_key(
            hood.storage_private_key, body["sealed_key"], kind=kind, subject=subject
        )
        package = hood.packages.get(subject)
        if kind != "package" or package is None or package.key != key:
            return _problem(404, "package-not-found", "no such package")
        session_id = secrets.token_hex(16)
        hood.key_sessions[session_id] = StandInKeySession(
            kind, subject, body.get("tag"), key, body["expires_at"]
        )
        grant = Grant(
            kind=kind,
            subject=subject,
            session_id=session_id,
            secret=secrets.token_bytes(SESSION_SECRET_SIZE),
            expires_at=body["expires_at"],
        )
        return {
            "session_id": session_id,
            "grant": seal_grant(hood.storage_private_key.public_key(), grant),
            "expires_at": body["expires_at"],
        }

    @app.post("/internal/v1/key-sessions/end")
    async def end_key_sessions(
        request: Request, _: Annotated[str, Depends(_service_caller)]
    ) -> Any:
        body = await request.json()
        hood.ended.append(body)
        ended = [
            session_id
            for session_id, row in hood.key_sessions.items()
            if (row.kind, row.subject) == (body["kind"], body["subject"])
            and (body.get("tag") is None or row.tag == body["tag"])
        ]
        for session_id in ended:
            del hood.key_sessions[session_id]
        return {"ended": len(ended)}

    @app.get("/internal/v1/key-sessions/{session_id}")
    async def key_session(session_id: str, _: Annotated[str, Depends(_service_caller)]) -> Any:
        if session_id not in hood.key_sessions:
            return _problem(404, "session-not-found", "no such live key session")
        return {"session_id": session_id}

    @app.post("/storage/v1/packages", status_code=201)
    async def create_package(request: Request) -> Any:
        claims = await institution(request)
        package = Package(id=str(uuid.uuid4()), owner=claims.sub, key=generate_package_key())
        hood.packages[package.id] = package
        return {"id": package.id, "state": "open"}

    async def _read(request: Request) -> bytes:
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
        assert len(data) == int(request.headers["content-length"])
        return bytes(data)

    @app.get("/storage/v1/packages/{package_id}")
    async def get_package(package_id: str, request: Request) -> Any:
        await institution(request)
        package = hood.packages[package_id]
        return {"id": package.id, "state": "open", "patient": package.patient}

    @app.post("/storage/v1/packages/{package_id}/instances", status_code=201)
    async def add_instance(package_id: str, request: Request) -> Any:
        await institution(request)
        data = await _read(request)
        if request.headers["content-type"] != "application/dicom" or data[128:132] != b"DICM":
            return _problem(415, "not-dicom", "not a DICOM Part 10 file")
        package = hood.packages[package_id]
        package.instances.append(data)
        if package.patient is None:
            dataset = pydicom.dcmread(io.BytesIO(data))
            package.patient = {
                "patient_id": str(dataset.PatientID),
                "name": str(dataset.PatientName),
            }
        return {"id": str(uuid.uuid4())}

    @app.post("/storage/v1/packages/{package_id}/documents", status_code=201)
    async def add_document(package_id: str, request: Request) -> Any:
        await institution(request)
        if not request.headers["content-type"].startswith("multipart/form-data"):
            return _problem(415, "unsupported-content", "send PDFs as multipart/form-data")
        package = hood.packages[package_id]
        async with request.form() as form:
            upload = form["file"]
            assert isinstance(upload, StarletteUploadFile)
            data = await upload.read()
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not data.startswith(b"%PDF-"):
            return _problem(415, "not-pdf", "not a PDF")
        if not fields.get("patient_id"):
            return _problem(422, "patient-required", "a PDF must be assigned to a patient")
        if package.patient is None:
            if not fields.get("patient_name"):
                return _problem(422, "patient-required", "the package has no patient yet")
            package.patient = {"patient_id": fields["patient_id"], "name": fields["patient_name"]}
        elif package.patient["patient_id"] != fields["patient_id"]:
            return _problem(422, "patient-mismatch", "another patient")
        package.documents.append(data)
        return {"id": str(uuid.uuid4())}

    @app.post("/storage/v1/packages/{package_id}/complete")
    async def complete(package_id: str, request: Request) -> Any:
        await institution(request)
        hood.packages[package_id].complete = True
        return {"id": package_id, "state": "complete"}

    return app
