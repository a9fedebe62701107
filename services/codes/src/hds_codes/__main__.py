"""``python -m hds_codes serve|migrate``."""

from __future__ import annotations

import argparse
import asyncio

import uvicorn

from hds_codes.config import Settings
from hds_codes.db import migrate


def main() -> None:
    parser = argparse.ArgumentParser(prog="hds_codes")
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = Settings()
    if args.command == "migrate":
        asyncio.run(migrate(settings.database_url))
        return
    uvicorn.run(
        "hds_codes.main:app_from_env",
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
