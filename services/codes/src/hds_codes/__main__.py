"""``python -m hds_codes serve|migrate``."""

from __future__ import annotations

import asyncio

from hds_codes.config import Settings
from hds_common.app import service_main
from hds_common.db import migrate_service


def migrate(settings: Settings) -> None:
    asyncio.run(migrate_service("hds_codes", settings.database_url))


def main() -> None:
    service_main(
        "hds_codes",
        "hds_codes.main:app_from_env",
        Settings,
        {"migrate": ("apply the database migrations", migrate)},
    )


if __name__ == "__main__":
    main()
