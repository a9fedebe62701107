"""``python -m hds_storage serve|migrate|grant-public-key|maintenance``."""

from __future__ import annotations

import argparse
import asyncio

from hds_common.app import serve
from hds_common.serving import HttpLimits
from hds_storage.config import Settings
from hds_storage.db import migrate


async def _maintenance(settings: Settings) -> None:
    from hds_common.blobstore import open_blobstore
    from hds_common.db import create_engine, create_session_maker
    from hds_storage.collector import run_maintenance

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


def main() -> None:
    parser = argparse.ArgumentParser(prog="hds_storage")
    parser.add_argument(
        "command",
        choices=["serve", "migrate", "grant-public-key", "maintenance"],
        help="serve: run the API; migrate: upgrade the database; grant-public-key: print "
        "the base64url X25519 key grants are sealed to (HDS_GRANT_PUBLIC_KEY), creating "
        "the private key file if needed; maintenance: one sweep pass and exit",
    )
    args = parser.parse_args()
    settings = Settings()
    if args.command == "migrate":
        asyncio.run(migrate(settings.database_url))
        return
    if args.command == "grant-public-key":
        from hds_common.key_provider import key_provider
        from hds_storage.keys import grant_public_key

        provider = key_provider(settings.suite.key_provider)
        print(grant_public_key(provider.x25519_private_key(settings.grant_private_key_file)))
        return
    if args.command == "maintenance":
        asyncio.run(_maintenance(settings))
        return
    serve(
        "hds_storage.main:app_from_env",
        host=settings.host,
        port=settings.port,
        limits=HttpLimits.from_settings(settings.suite),
    )


if __name__ == "__main__":
    main()
