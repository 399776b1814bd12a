"""The database schema as a list of versioned migrations, applied idempotently.

``migrate`` takes a transaction-scoped advisory lock first, so several server replicas (or
`noetl db init` racing a starting server) apply each migration exactly once: the others wait for
the lock, then find the versions already recorded in ``noetl.schema_version``.
Append new migrations to ``MIGRATIONS``; never edit one that has shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# pg_advisory_xact_lock key: any constant shared by every noetl process ("noetl" in ASCII).
LOCK_KEY = 0x6E6F65746C


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "executions, commands, events, workers",
        """
        CREATE TABLE noetl.executions (
            execution_id uuid PRIMARY KEY,
            status text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX executions_created_idx ON noetl.executions (created_at DESC, execution_id);
        CREATE INDEX executions_status_idx ON noetl.executions (status, created_at DESC);

        CREATE TABLE noetl.commands (
            command_id uuid PRIMARY KEY,
            execution_id uuid NOT NULL REFERENCES noetl.executions ON DELETE CASCADE,
            tool jsonb NOT NULL,
            timeout double precision NOT NULL,
            max_attempts integer NOT NULL CHECK (max_attempts >= 1),
            status text NOT NULL
                CHECK (status IN ('pending', 'claimed', 'completed', 'failed', 'dead')),
            -- the fencing token: the attempt of the latest claim (0 before the first one)
            attempt integer NOT NULL DEFAULT 0,
            -- attempts that count against max_attempts (expired leases; a release does not count)
            lost_leases integer NOT NULL DEFAULT 0,
            worker_id text,
            lease_until timestamptz,
            published_at timestamptz,
            available_at timestamptz NOT NULL DEFAULT now(),
            claimed_at timestamptz,
            finished_at timestamptz,
            result jsonb,
            error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX commands_execution_idx ON noetl.commands (execution_id);
        CREATE INDEX commands_leases_idx ON noetl.commands (lease_until) WHERE status = 'claimed';
        CREATE INDEX commands_outbox_idx ON noetl.commands (available_at)
            WHERE status = 'pending' AND published_at IS NULL;
        CREATE INDEX commands_status_idx ON noetl.commands (status);

        CREATE TABLE noetl.events (
            event_id bigserial PRIMARY KEY,
            execution_id uuid NOT NULL REFERENCES noetl.executions ON DELETE CASCADE,
            command_id uuid REFERENCES noetl.commands ON DELETE CASCADE,
            type text NOT NULL,
            payload jsonb NOT NULL DEFAULT '{}'::jsonb,
            worker_id text,
            attempt integer NOT NULL DEFAULT 0,
            seq integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            -- the same event sent twice is stored once
            UNIQUE (command_id, attempt, type, seq)
        );
        CREATE INDEX events_execution_idx ON noetl.events (execution_id, event_id);

        CREATE TABLE noetl.workers (
            worker_id text PRIMARY KEY,
            name text NOT NULL,
            host text NOT NULL,
            pid integer NOT NULL,
            concurrency integer NOT NULL,
            status text NOT NULL CHECK (status IN ('online', 'offline')),
            running jsonb NOT NULL DEFAULT '[]'::jsonb,
            registered_at timestamptz NOT NULL DEFAULT now(),
            heartbeat_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    Migration(
        2,
        "catalog, playbook executions, step runs, NoETL events, cancelled commands",
        """
        CREATE TABLE noetl.catalog (
            catalog_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            path text NOT NULL,
            version integer NOT NULL CHECK (version >= 1),
            kind text NOT NULL,
            name text NOT NULL,
            description text NOT NULL DEFAULT '',
            content text NOT NULL,
            -- sha256 of content: registering identical content again finds the existing version
            content_hash text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (path, version)
        );
        CREATE INDEX catalog_content_idx ON noetl.catalog (path, content_hash);

        -- Executions speak NoETL's words now, `noetl submit` ones included.
        UPDATE noetl.executions SET status = CASE status
            WHEN 'completed' THEN 'COMPLETED' WHEN 'failed' THEN 'FAILED' WHEN 'dead' THEN 'FAILED'
            ELSE 'RUNNING' END;
        ALTER TABLE noetl.executions
            ADD CONSTRAINT executions_status_check
                CHECK (status IN ('RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
            -- NULL for a `noetl submit` execution; set for a playbook's
            ADD COLUMN catalog_id bigint REFERENCES noetl.catalog,
            ADD COLUMN path text,
            ADD COLUMN version integer,
            ADD COLUMN workload jsonb,
            ADD COLUMN ctx jsonb,
            ADD COLUMN result jsonb,
            ADD COLUMN error text,
            ADD COLUMN parent_execution_id uuid REFERENCES noetl.executions ON DELETE SET NULL,
            ADD COLUMN finished_at timestamptz;
        CREATE INDEX executions_parent_idx ON noetl.executions (parent_execution_id)
            WHERE parent_execution_id IS NOT NULL;

        CREATE TABLE noetl.step_runs (
            execution_id uuid NOT NULL REFERENCES noetl.executions ON DELETE CASCADE,
            step text NOT NULL,
            status text NOT NULL
                CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped', 'cancelled')),
            result jsonb,
            error text,
            attempts integer NOT NULL DEFAULT 0,
            started_at timestamptz,
            finished_at timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (execution_id, step)
        );

        ALTER TABLE noetl.commands
            DROP CONSTRAINT commands_status_check,
            ADD CONSTRAINT commands_status_check
                CHECK (status IN ('pending', 'claimed', 'completed', 'failed', 'dead', 'cancelled')),
            -- the step this command runs (NULL for `noetl submit`); iteration: a loop's item (part 2)
            ADD COLUMN step text,
            ADD COLUMN iteration integer,
            ADD FOREIGN KEY (execution_id, step) REFERENCES noetl.step_runs ON DELETE CASCADE;
        CREATE INDEX commands_step_idx ON noetl.commands (execution_id, step) WHERE step IS NOT NULL;

        -- The engine's events (step.enter, call.done, ...) share the log: no command, a step name.
        ALTER TABLE noetl.events
            ADD COLUMN node_name text,
            ADD COLUMN status text;
        """,
    ),
    Migration(
        3,
        "loops and their iterations, the step a child execution finishes",
        """
        -- A loop step's state, one row per loop: counters, so that an iteration's end costs the
        -- same however long the list (the items and results are rows of noetl.iterations).
        CREATE TABLE noetl.loops (
            execution_id uuid NOT NULL,
            step text NOT NULL,
            total integer NOT NULL CHECK (total >= 0),
            -- NULL: no limit (a sequential loop has 1)
            max_in_flight integer CHECK (max_in_flight >= 1),
            dispatched integer NOT NULL DEFAULT 0,
            done integer NOT NULL DEFAULT 0,
            failed integer NOT NULL DEFAULT 0,
            PRIMARY KEY (execution_id, step),
            FOREIGN KEY (execution_id, step) REFERENCES noetl.step_runs ON DELETE CASCADE
        );
        -- The item list, rendered once when the loop starts, and each iteration's result.
        CREATE TABLE noetl.iterations (
            execution_id uuid NOT NULL,
            step text NOT NULL,
            iteration integer NOT NULL CHECK (iteration >= 0),
            item jsonb,
            status text NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled')),
            result jsonb,
            error text,
            PRIMARY KEY (execution_id, step, iteration),
            FOREIGN KEY (execution_id, step) REFERENCES noetl.loops ON DELETE CASCADE
        );
        -- A sub-playbook's execution ends the step (and iteration, in a loop) of its parent.
        ALTER TABLE noetl.executions ADD COLUMN parent_step text, ADD COLUMN parent_iteration integer;
        """,
    ),
    Migration(
        4,
        "lease secrets, re-published notices",
        """
        ALTER TABLE noetl.commands
            -- the random secret of the current attempt's lease (NULL while pending)
            ADD COLUMN lease_secret text,
            -- the worker's id of the claim call that took the lease: its retry gets the lease back
            ADD COLUMN claim_request text,
            -- how many times a notice NATS lost was published again (part of its message id)
            ADD COLUMN republished integer NOT NULL DEFAULT 0;
        CREATE INDEX commands_published_idx ON noetl.commands (published_at) WHERE status = 'pending';
        """,
    ),
    Migration(
        5,
        "indexes of the executions list by path (and status) and of the latest failures",
        """
        -- The executions list filtered by playbook path (and status), newest first, and its
        -- capped count: one index range each, however many executions other paths have.
        CREATE INDEX executions_path_idx ON noetl.executions (path, created_at DESC, execution_id)
            WHERE path IS NOT NULL;
        CREATE INDEX executions_path_status_idx
            ON noetl.executions (path, status, created_at DESC, execution_id)
            WHERE path IS NOT NULL;
        -- The overview's latest failures: the first rows of this index, not a sort of every failure.
        CREATE INDEX executions_failed_idx ON noetl.executions (finished_at DESC NULLS LAST, execution_id)
            WHERE status = 'FAILED';
        """,
    ),
)


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied by this call."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(
            """
            CREATE SCHEMA IF NOT EXISTS noetl;
            CREATE TABLE IF NOT EXISTS noetl.schema_version (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            );
            """
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM noetl.schema_version")}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO noetl.schema_version (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
            applied.append(migration.version)
    return applied


async def current_version(conn: asyncpg.Connection) -> int:
    """The highest applied version, 0 when the schema was never created."""
    exists = await conn.fetchval("SELECT to_regclass('noetl.schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM noetl.schema_version"))
