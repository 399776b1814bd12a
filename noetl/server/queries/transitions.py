"""Playbook executions: start, step ends and cancel, each applied in the caller's transaction.

The engine (``noetl.engine.decide``) is pure: it gets the playbook and the execution's state and
returns decisions. This module loads the state and applies the decisions in SQL in the same
transaction as the event that caused them, while holding the execution's row lock (``SELECT ...
FOR UPDATE``), so concurrent step ends of one execution are decided one after another and a crash
at any moment neither loses nor doubles a transition.

Lock order, everywhere: the execution row first, then its commands. Functions here expect the
caller to hold the execution's lock (``lock_execution``) inside an open transaction.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from uuid import UUID

import asyncpg

from noetl.engine import decide
from noetl.engine.playbook import Playbook
from noetl.engine.state import Decisions, Event, ExecutionState, StepRun
from noetl.protocol.nats import Notice
from noetl.protocol.words import EXECUTION_FINISHED, STEP_FINISHED
from noetl.server.problems import Conflict, NotFound
from noetl.server.queries import catalog

log = logging.getLogger(__name__)

# A step's command: how long its tool may run at most (a tool's own timeout_seconds is shorter),
# and how many lost leases (dead workers) it survives before the step fails.
STEP_TIMEOUT = 3600.0
STEP_MAX_ATTEMPTS = 3


async def lock_execution(conn: asyncpg.Connection, execution_id: UUID) -> asyncpg.Record:
    """Take the execution's row lock; its row, or NotFound."""
    row = await conn.fetchrow(
        """
        SELECT execution_id, status, catalog_id, workload, ctx FROM noetl.executions
        WHERE execution_id = $1 FOR UPDATE
        """,
        execution_id,
    )
    if row is None:
        raise NotFound(f"no execution {execution_id}")
    return row


async def start(
    conn: asyncpg.Connection, entry: dict[str, Any], payload: dict[str, Any]
) -> tuple[UUID, list[Notice]]:
    """Create an execution of catalog ``entry`` and apply the engine's first decisions."""
    pb = await catalog.playbook(conn, int(entry["catalog_id"]))
    execution_id = uuid.uuid4()
    state, decisions = decide.start(pb, str(execution_id), payload)
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO noetl.executions (execution_id, status, catalog_id, path, version, workload, ctx)
            VALUES ($1, 'RUNNING', $2, $3, $4, $5, $6)
            """,
            execution_id,
            entry["catalog_id"],
            entry["path"],
            entry["version"],
            state.workload,
            state.ctx,
        )
        notices = await apply(conn, execution_id, decisions)
    return execution_id, notices


async def load_state(conn: asyncpg.Connection, execution: asyncpg.Record) -> ExecutionState:
    rows = await conn.fetch(
        "SELECT step, status, result, error, attempts FROM noetl.step_runs WHERE execution_id = $1",
        execution["execution_id"],
    )
    return ExecutionState(
        execution_id=str(execution["execution_id"]),
        workload=execution["workload"] or {},
        ctx=execution["ctx"] or {},
        steps={
            r["step"]: StepRun(
                name=r["step"],
                status=r["status"],
                result=r["result"],
                error=r["error"],
                attempts=r["attempts"],
            )
            for r in rows
        },
        status=execution["status"],
    )


async def step_command_finished(
    conn: asyncpg.Connection, execution_id: UUID, step: str, ok: bool, result: Any, error: str | None
) -> list[Notice]:
    """The command of ``step`` ended: let the engine decide what follows (lock already held).

    Nothing follows when the execution already ended (cancelled, or failed on another branch) or
    the step is not running any more.
    """
    execution = await lock_execution(conn, execution_id)
    if execution["status"] in EXECUTION_FINISHED or execution["catalog_id"] is None:
        return []
    state = await load_state(conn, execution)
    run = state.steps.get(step)
    if run is None or run.status != "running":
        return []
    pb = await catalog.playbook(conn, execution["catalog_id"])
    decisions = _decide(pb, state, step, ok, result, error)
    return await apply(conn, execution_id, decisions)


def _decide(
    pb: Playbook, state: ExecutionState, step: str, ok: bool, result: Any, error: str | None
) -> Decisions:
    try:
        return decide.step_finished(pb, state, step, ok, result, error)
    except Exception as exc:
        # An engine defect must not make the worker's report fail forever (it would be retried
        # and refused again): the execution fails, saying where, and the report is recorded.
        log.exception("execution %s: the engine failed on the end of step %r", state.execution_id, step)
        message = f"step {step!r}: internal engine error: {type(exc).__name__}: {exc}"
        return Decisions(
            events=[Event("workflow.failed", step, "FAILED", error=message)],
            cancel=[name for name, run in state.steps.items() if run.status == "running"],
            final="FAILED",
            error=message,
        )


async def cancel(conn: asyncpg.Connection, execution_id: UUID, reason: str | None) -> str:
    """Cancel a running execution (playbook or `noetl submit`); Conflict when it already ended."""
    async with conn.transaction():
        execution = await lock_execution(conn, execution_id)
        if execution["status"] in EXECUTION_FINISHED:
            raise Conflict(f"execution {execution_id} already ended: {execution['status']}")
        if execution["catalog_id"] is None:
            decisions = Decisions(
                events=[Event("execution.cancelled", None, "CANCELLED", error=reason)],
                final="CANCELLED",
                error=reason or "cancelled",
            )
        else:
            pb = await catalog.playbook(conn, execution["catalog_id"])
            decisions = decide.cancel(pb, await load_state(conn, execution), reason)
        await apply(conn, execution_id, decisions)
    return decisions.final or "CANCELLED"


async def apply(conn: asyncpg.Connection, execution_id: UUID, decisions: Decisions) -> list[Notice]:
    """Record ``decisions``: events, context, step runs, new commands, the end. Returns the notices
    of the new commands, to publish after the commit."""
    if decisions.events:
        await conn.executemany(
            """
            INSERT INTO noetl.events (execution_id, type, node_name, status, payload)
            VALUES ($1, $2, $3, $4, $5)
            """,
            [(execution_id, e.type, e.node_name, e.status, _event_payload(e)) for e in decisions.events],
        )
    if decisions.steps:
        await conn.executemany(
            """
            INSERT INTO noetl.step_runs AS s
                (execution_id, step, status, result, error, attempts, started_at, finished_at)
            VALUES ($1, $2, $3, $4, $5, $6,
                    CASE WHEN $3 <> 'pending' THEN now() END, CASE WHEN $3 = ANY($7) THEN now() END)
            ON CONFLICT (execution_id, step) DO UPDATE SET
                status = $3, result = $4, error = $5, attempts = $6, updated_at = now(),
                started_at = coalesce(s.started_at, CASE WHEN $3 <> 'pending' THEN now() END),
                finished_at = CASE WHEN $3 = ANY($7) THEN now() END
            """,
            [
                (execution_id, name, r.status, r.result, r.error, r.attempts, list(STEP_FINISHED))
                for name, r in decisions.steps.items()
            ],
        )
    done = [r for r in decisions.steps.values() if r.status == "done"]
    await conn.execute(
        """
        UPDATE noetl.executions SET ctx = coalesce(ctx, '{}'::jsonb) || $2::jsonb,
            result = CASE WHEN $3 THEN $4::jsonb ELSE result END, updated_at = now()
        WHERE execution_id = $1
        """,
        execution_id,
        decisions.ctx,
        bool(done),
        done[-1].result if done else None,
    )
    if decisions.cancel or decisions.final:
        # A failed or cancelled execution stops everything; otherwise only the steps named.
        await conn.execute(
            """
            UPDATE noetl.commands
            SET status = 'cancelled', error = $3, finished_at = now(), lease_until = NULL,
                updated_at = now()
            WHERE execution_id = $1 AND status IN ('pending', 'claimed')
              AND ($2::text[] IS NULL OR step = ANY($2))
            """,
            execution_id,
            None if decisions.final else decisions.cancel,
            decisions.error or "cancelled",
        )
    notices = await _dispatch(conn, execution_id, decisions)
    if decisions.final:
        await conn.execute(
            """
            UPDATE noetl.executions SET status = $2, error = $3, finished_at = now(), updated_at = now()
            WHERE execution_id = $1
            """,
            execution_id,
            decisions.final,
            decisions.error,
        )
    return notices


async def _dispatch(conn: asyncpg.Connection, execution_id: UUID, decisions: Decisions) -> list[Notice]:
    if not decisions.dispatch:
        return []
    commands = [(uuid.uuid4(), d) for d in decisions.dispatch]
    # The step run a command links to exists even when the engine did not list it as changed.
    await conn.executemany(
        """
        INSERT INTO noetl.step_runs (execution_id, step, status, started_at) VALUES ($1, $2, 'running', now())
        ON CONFLICT (execution_id, step) DO NOTHING
        """,
        [(execution_id, d.step) for d in decisions.dispatch],
    )
    await conn.executemany(
        """
        WITH command AS (
            INSERT INTO noetl.commands
                (command_id, execution_id, step, tool, timeout, max_attempts, status)
            VALUES ($1, $2, $3, $4, $5, $6, 'pending')
        )
        INSERT INTO noetl.events (execution_id, command_id, type, payload, node_name)
        VALUES ($2, $1, 'created', $7, $3)
        """,
        [
            (
                command_id,
                execution_id,
                d.step,
                d.tool,
                STEP_TIMEOUT,
                STEP_MAX_ATTEMPTS,
                {"tool": d.tool.get("kind"), "timeout": STEP_TIMEOUT, "max_attempts": STEP_MAX_ATTEMPTS},
            )
            for command_id, d in commands
        ],
    )
    return [Notice(command_id=cid, execution_id=execution_id, attempt=1) for cid, _ in commands]


def _event_payload(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if event.result is not None:
        payload["result"] = event.result
    if event.error is not None:
        payload["error"] = event.error
    return payload
