"""One OpenAPI document for the whole public API."""
