"""Unit tests of noetl.server, noetl.client and the submit/status/db commands (nothing spawned)."""
