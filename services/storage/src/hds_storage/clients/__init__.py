"""The storage service's clients of its neighbours: the identity service and the access code
service."""
