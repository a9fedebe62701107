"""Property-based API tests of a service with schemathesis: the app in an
event loop of its own thread, the schemathesis configuration, and the checks.

Schemathesis' hypothesis tests are synchronous, while the app, its database engine and
its neighbours live in one event loop; a blocking portal (a thread running that loop)
joins the two: the lifespan, the set-up and every generated request run in the portal.

Besides the values schemathesis derives from the OpenAPI document, every string and
integer parameter and body field sometimes gets a hostile value (NUL and other control
characters, CR/LF, very long text, values past 64 bits, ...), and named parameters
sometimes get the ids of objects that exist, so generated requests reach the code
behind the lookups.

The same module is in each service's test directory (``<service>_fuzzing.py``): test
directories are not packages and cannot share one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import httpx
import requests
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from schemathesis import Case, CheckContext, CheckFunction, Response
from schemathesis.checks import not_a_server_error
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hds_common.errors import PROBLEM_CONTENT_TYPE

T = TypeVar("T")
Value = str | int
AnyCase = Case[Any]

# Fixed, so a failure found once is found again on every run and machine.
SEED = 20240419
HOSTILE_PROBABILITY = 0.2
KNOWN_PROBABILITY = 0.7

# Also sent in headers and URLs, so ASCII without CR/LF (which no client can send there).
HOSTILE_ASCII = [
    "\x00",
    "a\x00b",
    "\x01\x1b\x7f",
    "%00",
    "../../etc/passwd",
    "' OR '1'='1",
    "-1",
    "9223372036854775808",
    "1e309",
    " ",
    "x" * 5000,
]
HOSTILE_TEXT = [
    *HOSTILE_ASCII,
    "line\r\nBcc: victim@example.org",
    "next\x85line",
    "\u2028",
    "\u202e\U0001f600",
]
HOSTILE_INTEGERS = [-1, 0, 2**31, 2**63, -(2**63) - 1, 10**30]


def _body_fields(openapi: Mapping[str, Any]) -> dict[str, set[str]]:
    """Top-level JSON and form body fields of every operation, by JSON type."""
    schemas = openapi.get("components", {}).get("schemas", {})

    def resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def types(schema: Mapping[str, Any]) -> set[str]:
        schema = resolve(schema)
        found = {schema["type"]} if isinstance(schema.get("type"), str) else set()
        for variant in schema.get("anyOf", []) + schema.get("oneOf", []):
            found |= types(variant)
        return found

    fields: dict[str, set[str]] = {"string": set(), "integer": set()}
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                body = resolve(media.get("schema", {}))
                for name, schema in body.get("properties", {}).items():
                    for kind in types(schema) & set(fields):
                        fields[kind].add(name)
    return fields


def fuzz_schema(
    openapi: dict[str, Any],
    *,
    max_examples: int,
    known: Mapping[str, Sequence[Value]] | None = None,
) -> schemathesis.BaseSchema:
    """The app's own OpenAPI, tested in the examples, coverage (boundaries, missing and
    wrong-typed values) and fuzzing phases, with valid and invalid data, derandomized.
    ``known`` maps parameters (``path.code_id``, ``body.package_id``, ``header.X``) to
    values of existing objects, used for a third of the generated requests (another
    third gets hostile values): values known before the app runs, or placeholders that
    :class:`InProcessApp` replaces (the schema is built when the tests are collected)."""
    dictionaries: dict[str, Any] = {
        "hostile-ascii": {"values": HOSTILE_ASCII},
        "hostile-text": {"values": HOSTILE_TEXT},
        "hostile-integers": {"values": HOSTILE_INTEGERS},
    }
    parameters: dict[str, Any] = {}
    fields = _body_fields(openapi)
    for kind, dictionary in (("string", "hostile-text"), ("integer", "hostile-integers")):
        for name in fields[kind]:
            parameters[f"body.{name}"] = {
                "dictionary": dictionary,
                "probability": HOSTILE_PROBABILITY,
            }
    for index, (parameter, values) in enumerate((known or {}).items()):
        # As often the values of existing objects as hostile ones.
        hostile = HOSTILE_TEXT if parameter.startswith("body.") else HOSTILE_ASCII
        entries = [*values] * max(1, len(hostile) // len(values)) + hostile
        dictionaries[f"known-{index}"] = {"values": entries}
        parameters[parameter] = {"dictionary": f"known-{index}", "probability": KNOWN_PROBABILITY}
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Timing is no property of the API, and this machine may be busy.
            "suppress-health-check": ["too_slow"],
            "dictionaries": dictionaries,
            "parameters": parameters,
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
                "dictionaries": {
                    "string": {"dictionary": "hostile-ascii", "probability": HOSTILE_PROBABILITY},
                    "integer": {
                        "dictionary": "hostile-integers",
                        "probability": HOSTILE_PROBABILITY,
                    },
                },
            },
            "phases": {
                "examples": {"enabled": True},
                # One method no route has is enough to see 405 answered as a problem.
                "coverage": {"enabled": True, "unexpected-methods": ["PUT"]},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
        }
    )
    return schemathesis.openapi.from_dict(openapi, config=config)


def problem_json_for_client_errors(_: CheckContext, response: Response, case: AnyCase) -> None:
    """Every 4xx answer is an RFC 9457 problem (``application/problem+json`` whose
    ``status`` is the answer's status and whose ``type`` is a URN clients can switch on)."""
    content_type = (response.headers.get("content-type") or [""])[0]
    assert_problem_if_refused(
        case.operation.label, response.status_code, content_type, response.content
    )


def assert_problem_if_refused(what: str, status: int, content_type: str, body: bytes) -> None:
    if not 400 <= status < 500:
        return
    assert content_type.split(";")[0].strip() == PROBLEM_CONTENT_TYPE, (
        f"{what}: {status} answered as {content_type!r}, not {PROBLEM_CONTENT_TYPE}: {body[:300]!r}"
    )
    problem = json.loads(body)
    assert isinstance(problem, dict), problem
    assert problem.get("status") == status, problem
    assert str(problem.get("type", "")).startswith("urn:hds:problem:"), problem


CHECKS = (not_a_server_error, problem_json_for_client_errors)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Snapshot = Callable[[], Awaitable[Mapping[str, object]]]


@dataclass(repr=False)
class InProcessApp:
    """An app whose lifespan runs in ``portal``; ``client`` reaches it in-process.
    ``headers`` gives the credentials of a request (by operation); ``snapshot`` the
    stored data that a refused (4xx) request must leave as it was; ``aliases`` replace
    the placeholders of the ``known`` values of :func:`fuzz_schema` with the ids of
    objects the set-up made."""

    portal: BlockingPortal
    client: httpx.AsyncClient
    headers: Callable[[AnyCase], Mapping[str, str]] = field(default=lambda _: {})
    snapshot: Snapshot | None = None
    aliases: Mapping[str, Value] = field(default_factory=dict)
    checks: Sequence[CheckFunction] = CHECKS
    _last_snapshot: Mapping[str, object] | None = field(default=None, init=False, repr=False)

    def run(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        return self.portal.call(function, *args)

    def send(self, case: AnyCase) -> httpx.Response:
        """Send ``case`` as schemathesis would (``requests`` encodes the body, the query
        and the cookies), with this app's credentials, through ``client``."""
        if self.aliases:
            _replace_aliases(case, self.aliases)
        kwargs = case.as_transport_kwargs(base_url=str(self.client.base_url))
        kwargs["headers"].update(self.headers(case))
        prepared = requests.Request(**kwargs).prepare()
        body = prepared.body
        if isinstance(body, str):
            content = body.encode()
        elif isinstance(body, bytes) or body is None:
            content = body or b""
        else:
            raise TypeError(f"schemathesis generated a streamed body: {type(body)}")
        headers = {
            name: value if isinstance(value, str) else value.decode("latin-1")
            for name, value in prepared.headers.items()
        }
        method, url = str(prepared.method), str(prepared.url)

        async def request() -> httpx.Response:
            return await self.client.request(method, url, headers=headers, content=content)

        return self.run(request)

    def check(self, case: AnyCase) -> httpx.Response:
        """Send ``case``; fail on a 5xx, a 4xx that is no problem+json, or a refused
        (4xx) POST, PATCH, PUT or DELETE that changed stored data."""
        return self._observe(
            case.operation.label,
            case.method,
            lambda: self.send(case),
            lambda response: case.validate_response(response, checks=list(self.checks)),
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request made by hand (for what the OpenAPI document cannot describe), under
        the checks of :meth:`check`."""

        def validate(response: httpx.Response) -> None:
            what = f"{method} {url}"
            assert response.status_code < 500, (what, response.status_code, response.text)
            content_type = response.headers.get("content-type", "")
            assert_problem_if_refused(what, response.status_code, content_type, response.content)

        return self._observe(
            f"{method} {url}",
            method,
            lambda: self.run(partial(self.client.request, method, url, **kwargs)),
            validate,
        )

    def _observe(
        self,
        what: str,
        method: str,
        send: Callable[[], httpx.Response],
        validate: Callable[[httpx.Response], None],
    ) -> httpx.Response:
        changes = self.snapshot is not None and method.upper() not in SAFE_METHODS
        if changes and self._last_snapshot is None:
            self._last_snapshot = self.run(self._snapshot)
        before, self._last_snapshot = self._last_snapshot, None
        response = send()
        validate(response)
        if changes and 400 <= response.status_code < 500:
            after = self.run(self._snapshot)
            assert before is not None
            changed = sorted(name for name in after if after[name] != before.get(name))
            assert not changed, (
                f"{what} answered {response.status_code} but changed {changed}: "
                f"{response.text[:300]}"
            )
            # Nothing changed: also the state before the next request (unless a GET or
            # a 2xx answer comes first, which may change it).
            self._last_snapshot = after
        return response

    async def _snapshot(self) -> Mapping[str, object]:
        assert self.snapshot is not None
        return await self.snapshot()


def _replace_aliases(case: AnyCase, aliases: Mapping[str, Value]) -> None:
    def replace(value: Any) -> Any:
        if isinstance(value, str):
            return aliases.get(value, value)
        if isinstance(value, dict):
            return {key: replace(item) for key, item in value.items()}
        if isinstance(value, list):
            return [replace(item) for item in value]
        return value

    for container in (case.path_parameters, case.query, case.headers):
        if container:
            for key in list(container):
                container[key] = replace(container[key])
    if isinstance(case.body, dict | list | str):
        case.body = replace(case.body)


@contextmanager
def in_portal(
    harness: AbstractAsyncContextManager[T],
) -> Iterator[tuple[BlockingPortal, T]]:
    """Enter ``harness`` (which starts the app's lifespan) in a thread's event loop."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(harness) as value:
        yield portal, value


def database_snapshot(
    engine: AsyncEngine, tables: Sequence[Table], *, ignore: Mapping[str, set[str]] | None = None
) -> Snapshot:
    """A digest of every row of ``tables``, per table, leaving out the columns of
    ``ignore`` (``*``: the whole table) that refused requests change on purpose, like
    failure counters."""

    async def snapshot() -> dict[str, object]:
        digests: dict[str, object] = {}
        async with engine.connect() as connection:
            for table in tables:
                skipped = (ignore or {}).get(table.name, set())
                if "*" in skipped:
                    continue
                columns = [column for column in table.columns if column.name not in skipped]
                rows = (await connection.execute(select(*columns))).all()
                digests[table.name] = hashlib.sha256(
                    repr(sorted(map(repr, rows))).encode()
                ).hexdigest()
        return digests

    return snapshot
