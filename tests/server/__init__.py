"""Integration tests of the API server against real PostgreSQL and NATS."""
