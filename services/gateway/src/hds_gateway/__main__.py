"""``python -m hds_gateway serve``."""

from __future__ import annotations

import argparse

from hds_common.app import serve
from hds_common.serving import HttpLimits
from hds_gateway.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="hds_gateway")
    parser.add_argument("command", choices=["serve"])
    parser.parse_args()
    settings = Settings()
    serve(
        "hds_gateway.main:app_from_env",
        host=settings.host,
        port=settings.port,
        limits=HttpLimits.from_settings(settings.suite),
    )


if __name__ == "__main__":
    main()
