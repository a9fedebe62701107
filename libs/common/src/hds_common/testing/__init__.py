"""Test helpers shared by the services' test suites (real servers, no mocks)."""
