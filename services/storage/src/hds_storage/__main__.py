"""``python -m hds_storage serve|migrate``."""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from hds_storage.config import Settings
from hds_storage.db import migrate


def main() -> None:
    parser = argparse.ArgumentParser(prog="hds_storage")
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = Settings()
    if args.command == "migrate":
        asyncio.run(migrate(settings.database_url))
        return
    uvicorn.run(
        "hds_storage.main:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        proxy_headers=True,
        forwarded_allow_ips="*",
    )


if __name__ == "__main__":
    main()
