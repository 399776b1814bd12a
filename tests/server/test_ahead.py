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


# The server's ``main`` in a fresh interpreter, with the thread's start and uvicorn's run replaced:
# it prints, once it would serve, whether the migrations were started and whether FastAPI was
# loaded by then.
PROBE = """
import sys
from noetl.server import ahead, serving

started = []


def migrate_ahead(settings):
    started.append("fastapi loaded" if "fastapi" in sys.modules else "before fastapi")


def run(self, sockets=None):
    print(f"migrations started: {started}")
    raise SystemExit(7)


ahead.migrate_ahead = migrate_ahead
serving.PromptServer.run = run
from noetl.server.__main__ import main

sys.exit(main(sys.argv[1:]))
"""


def _probe(pg_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(**pg_env, NOETL_PORT=str(free_port()))
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_the_migrations_start_before_the_server_imports(pg_env: dict[str, str]) -> None:
    probe = _probe(pg_env)
    assert (probe.returncode, probe.stdout) == (7, "migrations started: ['before fastapi']\n"), probe.stderr


def test_not_again_after_init_db(pg_env: dict[str, str]) -> None:
    probe = _probe(pg_env, "--init-db")
    assert (probe.returncode, probe.stdout) == (7, "migrations started: []\n"), probe.stderr
    assert _tables(pg_env) == TABLES  # --init-db applied them
