"""The identity service's client of its one neighbour, the storage service (its ``/internal``
routes, with the service token)."""
