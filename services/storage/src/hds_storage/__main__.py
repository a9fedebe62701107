"""``python -m hds_storage serve|migrate|grant-public-key|maintenance``."""

from __future__ import annotations

import asyncio

from hds_common.app import service_main
from hds_common.db import migrate_service
from hds_storage.config import Settings


def _migrate(settings: Settings) -> None:
    asyncio.run(migrate_service("hds_storage", settings.database_url))


def _grant_public_key(settings: Settings) -> None:
    from hds_common.key_provider import key_provider
    from hds_storage.keys import grant_public_key

    provider = key_provider(settings.suite.key_provider)
    print(grant_public_key(provider.x25519_private_key(settings.grant_private_key_file)))


async def _maintenance_pass(settings: Settings) -> None:
    from hds_common.blobstore import open_blobstore
    from hds_common.db import create_engine, create_session_maker
    from hds_storage.maintenance.collector import run_maintenance

    engine = create_engine(settings.database_url)
    store = await open_blobstore(settings.blob_url)
    try:
        report = await run_maintenance(
            create_session_maker(engine),
            store,
            upload_stale_seconds=settings.upload_stale_seconds,
            package_idle_timeout_seconds=settings.package_idle_timeout_seconds,
        )
    finally:
        await store.close()
        await engine.dispose()
    print(
        f"stale uploads removed: {report.stale_batches}, packages completed: "
        f"{report.completed_packages}, orphan blobs removed: {report.orphans_removed}"
    )


def _maintenance(settings: Settings) -> None:
    asyncio.run(_maintenance_pass(settings))


def main() -> None:
    service_main(
        "hds_storage",
        "hds_storage.main:app_from_env",
        Settings,
        {
            "migrate": ("upgrade the database", _migrate),
            "grant-public-key": (
                "print the base64url X25519 key grants are sealed to (HDS_GRANT_PUBLIC_KEY), "
                "creating the private key file if needed",
                _grant_public_key,
            ),
            "maintenance": ("one sweep pass and exit", _maintenance),
        },
    )


if __name__ == "__main__":
    main()
