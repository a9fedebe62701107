"""Clients of the neighbours codes calls: the identity service and the storage service
(their ``/internal`` routes, with the service token)."""
