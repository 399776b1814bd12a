"""The server applies the migrations in a thread of its own while it imports (``server/ahead.py``):
started before FastAPI loads, it leaves the schema complete, and a failure there is silent (the
lifespan's ``Database.open`` runs them again and says what is wrong)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from noetl.server.ahead import migrate_ahead
from noetl.server.migrations import MIGRATIONS
from noetl.settings import load_settings
from tests.server.conftest import ROOT, clean_env, pg_fetch
from tests.server.test_schema import TABLES
from tests.services import free_port

pytestmark = pytest.mark.integration


def _tables(pg_env: dict[str, str]) -> list[str]:
    rows = pg_fetch(pg_env, "SELECT tablename FROM pg_tables WHERE schemaname = 'noetl' ORDER BY 1")
    return [row["tablename"] for row in rows]


def _versions(pg_env: dict[str, str]) -> list[int]:
    rows = pg_fetch(pg_env, "SELECT version FROM noetl.schema_version ORDER BY version")
    return [row["version"] for row in rows]


def test_it_migrates_a_new_database_once(pg_env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(clean_env(**pg_env))
    with caplog.at_level(logging.INFO, logger="noetl.server.db"):
        for _ in range(2):
            thread = migrate_ahead(settings)
            thread.join(30)
            assert not thread.is_alive()
    assert _tables(pg_env) == TABLES
    assert _versions(pg_env) == [migration.version for migration in MIGRATIONS]
    applied = [
        record.getMessage() for record in caplog.records if "applied schema migrations" in record.message
    ]
    assert len(applied) == 1 and applied[0].endswith(str([m.version for m in MIGRATIONS]))


def test_an_unreachable_database_is_left_to_the_lifespan(pg_env: dict[str, str]) -> None:
    settings = load_settings(clean_env(**{**pg_env, "POSTGRES_PORT": str(free_port())}))
    thread = migrate_ahead(settings)
    thread.join(30)
    assert not thread.is_alive()  # ended without a word; nothing raised in the server's thread


# ``serve`` as the server runs it, in a fresh interpreter, with the thread's start replaced: it
# prints whether FastAPI was loaded when the migrations were started.
PROBE = """
import sys
from noetl.server import ahead


def migrate_ahead(settings):
    print(f"migrations started; fastapi loaded: {'fastapi' in sys.modules}")
    raise SystemExit(7)


ahead.migrate_ahead = migrate_ahead
from noetl.server.__main__ import main

sys.exit(main([]))
"""


def test_the_migrations_start_before_the_server_imports(pg_env: dict[str, str]) -> None:
    env = clean_env(**pg_env, NOETL_PORT=str(free_port()))
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (probe.returncode, probe.stdout) == (7, "migrations started; fastapi loaded: False\n"), (
        probe.stderr
    )
