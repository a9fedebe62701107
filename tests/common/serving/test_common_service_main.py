"""hds_common.app.service_main: ``python -m hds_<service> serve|<command>``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

import hds_common.app
from hds_common.app import service_main
from hds_common.serving import HttpLimits
from hds_common.settings import ServiceSettings

FACTORY = "hds_example.main:app_from_env"


def example_settings() -> ServiceSettings:
    return ServiceSettings(host="0.0.0.0", port=9100)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``serve`` was called with; uvicorn never starts."""
    calls: list[dict[str, Any]] = []

    def serve(factory: str, *, host: str, port: int, limits: HttpLimits) -> None:
        calls.append({"factory": factory, "host": host, "port": port, "limits": limits})

    monkeypatch.setattr(hds_common.app, "serve", serve)
    return calls


def run(monkeypatch: pytest.MonkeyPatch, *argv: str, **commands: Callable[[Any], None]) -> None:
    monkeypatch.setattr(sys, "argv", ["hds_example", *argv])
    service_main(
        "hds_example",
        FACTORY,
        example_settings,
        {name: (f"{name} the example", command) for name, command in commands.items()},
    )


def test_serve_runs_the_factory_where_the_settings_say(
    monkeypatch: pytest.MonkeyPatch, served: list[dict[str, Any]]
) -> None:
    ran: list[object] = []
    run(monkeypatch, "serve", migrate=ran.append)
    assert served == [
        {
            "factory": FACTORY,
            "host": "0.0.0.0",
            "port": 9100,
            "limits": HttpLimits.from_settings(example_settings().suite),
        }
    ]
    assert ran == []


def test_a_command_runs_with_the_settings_and_nothing_is_served(
    monkeypatch: pytest.MonkeyPatch, served: list[dict[str, Any]]
) -> None:
    ran: list[ServiceSettings] = []
    skipped: list[ServiceSettings] = []
    run(monkeypatch, "migrate", migrate=ran.append, rotate=skipped.append)
    assert [(settings.host, settings.port) for settings in ran] == [("0.0.0.0", 9100)]
    assert skipped == []
    assert served == []


def test_an_unknown_command_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
    served: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ran: list[object] = []
    with pytest.raises(SystemExit) as exit_info:
        run(monkeypatch, "destroy", migrate=ran.append)
    assert exit_info.value.code == 2
    assert "invalid choice: 'destroy'" in capsys.readouterr().err
    assert (ran, served) == ([], [])


def test_the_help_names_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(monkeypatch, "--help", migrate=print, rotate=print)
    assert exit_info.value.code == 0
    usage = " ".join(capsys.readouterr().out.split())
    assert "{serve,migrate,rotate}" in usage
    assert "serve: run the API; migrate: migrate the example; rotate: rotate the example" in usage
