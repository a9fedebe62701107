"""``python -m hds_client``: the ``hds`` command line."""

from hds_client.cli import main

raise SystemExit(main())
