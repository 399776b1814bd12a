"""Schema migrations: idempotent, and safe when many processes apply them at once."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from collections.abc import Callable

import asyncpg
import pytest

from noetl.protocol.words import EXECUTION_STATUSES, STATUSES, STEP_STATUSES, WORKER_STATES
from noetl.server.migrations import MIGRATIONS, current_version, migrate
from tests.server.conftest import ROOT, Server, clean_env, pg_fetch, submit

pytestmark = pytest.mark.integration

LATEST = MIGRATIONS[-1].version
TABLES = [
    "catalog",
    "commands",
    "events",
    "executions",
    "iterations",
    "loops",
    "schema_version",
    "step_runs",
    "workers",
]
ALL = ", ".join(str(m.version) for m in MIGRATIONS)


def _db_init(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "noetl", "db", "init"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _tables(pg_env: dict[str, str]) -> list[str]:
    rows = pg_fetch(pg_env, "SELECT tablename FROM pg_tables WHERE schemaname = 'noetl' ORDER BY 1")
    return [r["tablename"] for r in rows]


def test_db_init_twice(pg_env: dict[str, str]) -> None:
    env = clean_env(**pg_env)
    outputs = []
    for _ in range(2):
        proc = _db_init(env)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    assert outputs == [f"schema at version {LATEST} (applied {ALL})", f"schema already at version {LATEST}"]
    assert _tables(pg_env) == TABLES


def test_db_init_concurrently(pg_env: dict[str, str]) -> None:
    env = clean_env(**pg_env)
    procs = [_db_init(env) for _ in range(6)]
    results = [(p.communicate(timeout=60), p.returncode) for p in procs]
    assert [code for _, code in results] == [0] * 6, [err for (_, err), _ in results]
    applied = [out for (out, _), _ in results if "applied" in out]
    assert len(applied) == 1
    versions = pg_fetch(pg_env, "SELECT version FROM noetl.schema_version ORDER BY version")
    assert [v["version"] for v in versions] == [m.version for m in MIGRATIONS]


def test_migrate_from_many_connections_at_once(pg_env: dict[str, str]) -> None:
    async def run() -> list[list[int]]:
        conns = [
            await asyncpg.connect(
                host=pg_env["POSTGRES_HOST"],
                port=int(pg_env["POSTGRES_PORT"]),
                user=pg_env["POSTGRES_USER"],
                database=pg_env["POSTGRES_DB"],
            )
            for _ in range(12)
        ]
        try:
            applied = await asyncio.gather(*(migrate(c) for c in conns))
            assert await current_version(conns[0]) == LATEST
            return list(applied)
        finally:
            for c in conns:
                await c.close()

    applied = asyncio.run(run())
    assert sorted(applied, key=len) == [[]] * 11 + [[m.version for m in MIGRATIONS]]
    assert _tables(pg_env) == TABLES


def test_server_init_db_then_serves(
    pg_env: dict[str, str], nats: object, make_server: Callable[..., Server], server_env: dict[str, str]
) -> None:
    # Two replicas starting at once on an empty database.
    first = make_server(server_env, wait_ready=False)
    second = make_server(server_env, wait_ready=False)
    for server in (first, second):
        server.wait_ready()
        with server.client() as api:
            submit(api)
    versions = pg_fetch(pg_env, "SELECT version FROM noetl.schema_version")
    assert [v["version"] for v in versions] == [m.version for m in MIGRATIONS]


def test_init_db_flag_runs_migrations_before_serving(pg_env: dict[str, str]) -> None:
    with socket.socket() as taken:  # the port is taken: the server stops right after --init-db
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        proc = subprocess.run(
            [sys.executable, "-m", "noetl.server", "--init-db", "--host", "127.0.0.1", "--port", port],
            env=clean_env(**pg_env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 5, proc.stderr
    assert f"schema at version {LATEST} (applied now: [{ALL}])" in proc.stderr
    assert _tables(pg_env) == TABLES


def _check_words(pg_env: dict[str, str], table: str, column: str) -> list[str]:
    """The words a CHECK (column IN (...)) constraint of ``table`` allows, read from the catalog."""
    rows = pg_fetch(
        pg_env,
        """
        SELECT pg_get_constraintdef(c.oid) AS def FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = 'noetl' AND t.relname = $1 AND c.contype = 'c'
        """,
        table,
    )
    defs = [r["def"] for r in rows if f"({column} = ANY" in r["def"]]
    assert len(defs) == 1, rows
    return re.findall(r"'([^']*)'::text", defs[0])


def test_sql_check_constraints_spell_the_protocol_words(pg_env: dict[str, str]) -> None:
    """The CHECK lists written in the migrations equal the words in noetl.protocol.words."""
    assert (
        subprocess.run(
            [sys.executable, "-m", "noetl", "db", "init"], env=clean_env(**pg_env), cwd=ROOT
        ).returncode
        == 0
    )
    assert tuple(_check_words(pg_env, "commands", "status")) == STATUSES
    assert tuple(_check_words(pg_env, "workers", "status")) == WORKER_STATES
    assert tuple(_check_words(pg_env, "executions", "status")) == EXECUTION_STATUSES
    assert tuple(_check_words(pg_env, "step_runs", "status")) == STEP_STATUSES


def test_migration_2_renames_the_statuses_of_earlier_executions(pg_env: dict[str, str]) -> None:
    """Executions recorded by version 1 in the command's words read in NoETL's words after 2."""
    old = {
        "pending": "RUNNING",
        "claimed": "RUNNING",
        "completed": "COMPLETED",
        "failed": "FAILED",
        "dead": "FAILED",
    }

    async def run() -> list[tuple[str, str]]:
        conn = await _connect(pg_env)
        try:
            async with conn.transaction():
                await conn.execute("CREATE SCHEMA noetl")
                await conn.execute(
                    "CREATE TABLE noetl.schema_version (version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                await conn.execute(MIGRATIONS[0].sql)
                await conn.execute("INSERT INTO noetl.schema_version (version, name) VALUES (1, 'one')")
                for word in old:
                    await conn.execute(
                        "INSERT INTO noetl.executions (execution_id, status) VALUES (gen_random_uuid(), $1)",
                        word,
                    )
            before = [
                r["execution_id"]
                for r in await conn.fetch("SELECT execution_id FROM noetl.executions ORDER BY status")
            ]
            words = [
                r["status"] for r in await conn.fetch("SELECT status FROM noetl.executions ORDER BY status")
            ]
            assert await migrate(conn) == [m.version for m in MIGRATIONS[1:]]
            after = await conn.fetch("SELECT execution_id, status FROM noetl.executions")
            renamed = {r["execution_id"]: r["status"] for r in after}
            return [(w, renamed[e]) for w, e in zip(words, before, strict=True)]
        finally:
            await conn.close()

    assert sorted(asyncio.run(run())) == sorted(old.items())


async def _connect(pg_env: dict[str, str]) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=pg_env["POSTGRES_HOST"],
        port=int(pg_env["POSTGRES_PORT"]),
        user=pg_env["POSTGRES_USER"],
        database=pg_env["POSTGRES_DB"],
    )
