"""``python -m hds_dlx serve``: the DLX API on HDS_DLX_HOST:HDS_DLX_PORT (127.0.0.1:8004)."""

from __future__ import annotations

import argparse

from hds_common.app import serve
from hds_common.serving import HttpLimits
from hds_dlx.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="hds_dlx")
    parser.add_argument("command", choices=["serve"])
    parser.parse_args()
    settings = Settings()
    serve(
        "hds_dlx.main:app_from_env",
        host=settings.host,
        port=settings.port,
        limits=HttpLimits.from_settings(settings.suite),
    )


if __name__ == "__main__":
    main()
