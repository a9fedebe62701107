"""``python -m hds_codes serve|migrate``."""

from __future__ import annotations

import argparse
import asyncio

from hds_codes.config import Settings
from hds_codes.db import migrate
from hds_common.app import serve
from hds_common.serving import HttpLimits


def main() -> None:
    parser = argparse.ArgumentParser(prog="hds_codes")
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = Settings()
    if args.command == "migrate":
        asyncio.run(migrate(settings.database_url))
        return
    serve(
        "hds_codes.main:app_from_env",
        host=settings.host,
        port=settings.port,
        limits=HttpLimits.from_settings(settings.suite),
    )


if __name__ == "__main__":
    main()
