"""``python -m hds_gateway serve``."""

from __future__ import annotations

from hds_common.app import service_main
from hds_gateway.config import Settings


def main() -> None:
    service_main("hds_gateway", "hds_gateway.main:app_from_env", Settings)


if __name__ == "__main__":
    main()
