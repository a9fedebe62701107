"""``python -m hds_dlx serve``: the DLX API on HDS_DLX_HOST:HDS_DLX_PORT (127.0.0.1:8004)."""

from __future__ import annotations

from hds_common.app import service_main
from hds_dlx.config import Settings


def main() -> None:
    service_main("hds_dlx", "hds_dlx.main:app_from_env", Settings)


if __name__ == "__main__":
    main()
