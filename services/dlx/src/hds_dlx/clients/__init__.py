"""Calls to the neighbouring services (docs/architecture.md), with their answers mapped to
the DLX answers. The DLX service holds no data: codes validates, auth mints the JWT, storage
lists and streams."""
