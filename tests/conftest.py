"""Shared fixtures: a real PostgreSQL per test session (a fresh database per test) and a real
NATS server with JetStream per test, both on 127.0.0.1 with free ports, stopped by PID."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Nats, Postgres, nats_server, postgres_server

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Postgres]:
    with tempfile.TemporaryDirectory(prefix="noetl-pg-") as tmp, postgres_server(Path(tmp)) as pg:
        yield pg


@pytest.fixture
def pg_env(pg_server: Postgres) -> dict[str, str]:
    """POSTGRES_* variables for a new, empty database on the session's PostgreSQL."""
    name = f"noetl_test_{next(_db_counter)}"
    pg_server.create_database(name)
    return pg_server.env(name)


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[Nats]:
    with nats_server(tmp_path / "nats") as server:
        yield server
