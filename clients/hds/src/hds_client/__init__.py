"""Client of the HDS suite through its gateway: the typed HTTP API (:mod:`hds_client.api`),
publishing files (:mod:`hds_client.publish`) and the ``hds`` command line
(:mod:`hds_client.cli`). It talks HTTP only and imports no service of the suite."""
