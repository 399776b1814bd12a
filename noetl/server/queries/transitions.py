"""Playbook executions: start, step ends and cancel, each applied in the caller's transaction.

The engine (``noetl.engine.decide``) is pure: it gets the playbook and the execution's state and
returns decisions. This module loads the state and applies the decisions in SQL in the same
transaction as the event that caused them, while holding the execution's row lock (``SELECT ...
FOR UPDATE``), so concurrent step ends of one execution are decided one after another and a crash
at any moment neither loses nor doubles a transition.

Lock order, everywhere (``locks``): the execution's ancestors, the execution row, then its
commands. Functions here expect to run inside an open transaction; they take the locks.

Loops keep their state in rows (``loops``): an iteration's end reads and writes one loop row and
one iteration row, whatever the loop's size. A sub-playbook is a child execution created in the
same transaction as the decision that started it; its final event reports to the parent in the
same transaction as well.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from noetl.engine.state import ChildStart, Decisions, Dispatch, Event, ExecutionState, StepRun
from noetl.engine.state import apply as state_after
from noetl.lazy import lazy_module
from noetl.protocol.nats import Notice
from noetl.protocol.words import EXECUTION_FINISHED, STEP_FINISHED
from noetl.server.problems import Conflict, NotFound
from noetl.server.queries import catalog, locks, loops

if TYPE_CHECKING:
    from noetl.engine import decide
    from noetl.engine.playbook import Playbook
else:  # the engine (Jinja2, YAML) loads at the first playbook run, not at the server's start
    decide = lazy_module("noetl.engine.decide")

log = logging.getLogger(__name__)

# A step's command: how long its tool may run at most (a tool's own timeout_seconds is shorter),
# and how many lost leases (dead workers) it survives before the step fails.
STEP_TIMEOUT = 3600.0
STEP_MAX_ATTEMPTS = 3
# Sub-playbooks nest at most this deep: a playbook that starts itself fails its step instead of
# creating executions without end (in one transaction, when each starts its child at once).
MAX_CHILD_DEPTH = 16


@dataclass(frozen=True)
class Parent:
    """Where a sub-playbook's end is reported: the parent execution's step (and iteration)."""

    execution_id: UUID
    step: str
    iteration: int | None


async def start(
    conn: asyncpg.Connection, entry: dict[str, Any], payload: dict[str, Any]
) -> tuple[UUID, list[Notice]]:
    """Create an execution of catalog ``entry`` and apply the engine's first decisions."""
    async with conn.transaction():
        return await _create(conn, entry, payload, None)


async def _create(
    conn: asyncpg.Connection, entry: dict[str, Any], payload: dict[str, Any], parent: Parent | None
) -> tuple[UUID, list[Notice]]:
    pb = await catalog.playbook(conn, int(entry["catalog_id"]))
    execution_id = uuid.uuid4()
    state, decisions = decide.start(pb, str(execution_id), payload)
    await conn.execute(
        """
        INSERT INTO noetl.executions (execution_id, status, catalog_id, path, version, workload, ctx,
            parent_execution_id, parent_step, parent_iteration)
        VALUES ($1, 'RUNNING', $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        execution_id,
        entry["catalog_id"],
        entry["path"],
        entry["version"],
        state.workload,
        state.ctx,
        parent.execution_id if parent else None,
        parent.step if parent else None,
        parent.iteration if parent else None,
    )
    notices = await apply(conn, execution_id, decisions, pb, state)
    return execution_id, notices


async def load_state(conn: asyncpg.Connection, execution: asyncpg.Record) -> ExecutionState:
    """The engine's view: the step runs, with their loop counters (O(steps), not O(items)), in one
    round trip."""
    rows = await conn.fetch(
        """
        SELECT s.step, s.status, s.result, s.error, s.attempts,
               l.total, l.max_in_flight, l.dispatched, l.done, l.failed
        FROM noetl.step_runs s
        LEFT JOIN noetl.loops l ON l.execution_id = s.execution_id AND l.step = s.step
        WHERE s.execution_id = $1
        """,
        execution["execution_id"],
    )
    return _state(execution, rows)


# ``load_state``'s rows of execution ``{execution}`` (an SQL expression) as one JSON array.
_RUNS = """
    (SELECT coalesce(json_agg(json_build_object(
                'step', s.step, 'status', s.status, 'result', s.result, 'error', s.error,
                'attempts', s.attempts, 'total', l.total, 'max_in_flight', l.max_in_flight,
                'dispatched', l.dispatched, 'done', l.done, 'failed', l.failed)), '[]')
     FROM noetl.step_runs s
     LEFT JOIN noetl.loops l ON l.execution_id = s.execution_id AND l.step = s.step
     WHERE s.execution_id = {execution})
"""

# The execution's row, locked, with the engine's view of it: one round trip. Its snapshot must
# not predate the lock, or a step end committed while it waited would be missing from the runs:
# see ``locked_state``.
_LOCKED_STATE = f"""
    SELECT {locks.EXECUTION_COLUMNS}, {_RUNS.format(execution="$1")} AS runs
    FROM noetl.executions WHERE execution_id = $1
    FOR UPDATE OF executions
"""


async def locked_state(conn: asyncpg.Connection, execution_id: UUID) -> tuple[asyncpg.Record, ExecutionState]:
    """The execution's row and the engine's view of it, in one round trip (every step's end reads
    them), for a caller that holds the execution's lock already (``locks``: every step's end
    takes it before its command's row). Holding it, the statement never waits for it, so what it
    reads is what the lock protects; its own ``FOR UPDATE`` keeps the row locked whatever happens.
    NotFound when there is no such execution."""
    row = await conn.fetchrow(_LOCKED_STATE, execution_id)
    if row is None:
        raise NotFound(f"no execution {execution_id}")
    return row, _state(row, row["runs"])


def state_sql(execution: str) -> str:
    """SQL of one JSON value: what a step's end reads of execution ``execution`` (an SQL
    expression), its row's columns and its runs, for a statement that reads the command's row
    anyway (``known`` of ``step_command_finished``: one round trip less). The statement must
    follow the execution's lock, as ``locked_state`` does."""
    return f"""
        (SELECT json_build_object(
            'execution_id', e.execution_id, 'status', e.status, 'catalog_id', e.catalog_id,
            'workload', e.workload, 'ctx', e.ctx, 'runs', {_RUNS.format(execution="e.execution_id")})
         FROM noetl.executions e WHERE e.execution_id = {execution})
    """


def _state(execution: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> ExecutionState:
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
                loop=loops.counters_of(r),
            )
            for r in rows
        },
        status=execution["status"],
    )


async def step_command_finished(
    conn: asyncpg.Connection,
    execution_id: UUID,
    step: str,
    iteration: int | None,
    ok: bool,
    result: Any,
    error: str | None,
    report: dict[str, Any] | None = None,
    known: Mapping[str, Any] | None = None,
) -> list[Notice]:
    """The command (or child execution) of ``step`` ended, or of one iteration of it: let the
    engine decide what follows. ``report`` is the worker's final payload: its ``retries`` become
    ``call.retry`` events, its ``ctx`` the policy's context writes. ``known`` is the execution as
    ``state_sql`` read it in this transaction, if nothing changed it since.

    Nothing follows when the execution already ended (cancelled, or failed on another branch) or
    the step is not running any more. The caller holds the execution's lock (``locked_state``).
    """
    if known is None:
        execution, state = await locked_state(conn, execution_id)
    else:
        execution, state = known, _state(known, known["runs"])
    if execution["status"] in EXECUTION_FINISHED or execution["catalog_id"] is None:
        return []
    run = state.steps.get(step)
    if run is None or run.status != "running":
        return []
    pb = await catalog.playbook(conn, execution["catalog_id"])
    report = report or {}
    await _record_retries(conn, execution_id, step, iteration, report.get("retries"))
    writes = report.get("ctx") if isinstance(report.get("ctx"), dict) else None
    if iteration is None:
        decisions = _decide(
            state, step, lambda: decide.step_finished(pb, state, step, ok, result, error, writes)
        )
    else:
        index = iteration
        if run.loop is not None:
            await loops.next_item(conn, execution_id, step, run.loop)
        decisions = _decide(
            state,
            step,
            lambda: decide.iteration_finished(pb, state, step, index, ok, result, error, writes),
        )
    return await apply(conn, execution_id, decisions, pb, state)


async def _record_retries(
    conn: asyncpg.Connection, execution_id: UUID, step: str, iteration: int | None, retries: Any
) -> None:
    """One ``call.retry`` event per attempt that a policy retried, as the worker reported them."""
    if not isinstance(retries, list):
        return
    rows = []
    for retry in retries:
        if not isinstance(retry, dict):
            continue
        payload = {key: retry.get(key) for key in ("attempt", "error", "status", "delay", "task")}
        if iteration is not None:
            payload["iteration"] = iteration
        rows.append((execution_id, "call.retry", step, "RUNNING", payload))
    if not rows:
        return
    await conn.executemany(
        """
        INSERT INTO noetl.events (execution_id, type, node_name, status, payload)
        VALUES ($1, $2, $3, $4, $5)
        """,
        rows,
    )


def _decide(state: ExecutionState, step: str, decision: Callable[[], Decisions]) -> Decisions:
    try:
        return decision()
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
    """Cancel a running execution (playbook or `noetl submit`) and its children; Conflict when it
    already ended."""
    async with conn.transaction():
        execution = await locks.lock_execution(conn, execution_id)
        if execution["status"] in EXECUTION_FINISHED:
            raise Conflict(f"execution {execution_id} already ended: {execution['status']}")
        return await _cancel_locked(conn, execution, reason)


async def _cancel_locked(conn: asyncpg.Connection, execution: asyncpg.Record, reason: str | None) -> str:
    if execution["catalog_id"] is None:
        decisions = Decisions(
            events=[Event("execution.cancelled", None, "CANCELLED", error=reason)],
            final="CANCELLED",
            error=reason or "cancelled",
        )
        await apply(conn, execution["execution_id"], decisions)
    else:
        pb = await catalog.playbook(conn, execution["catalog_id"])
        state = await load_state(conn, execution)
        decisions = decide.cancel(pb, state, reason)
        await apply(conn, execution["execution_id"], decisions, pb, state)
    return decisions.final or "CANCELLED"


async def apply(
    conn: asyncpg.Connection,
    execution_id: UUID,
    decisions: Decisions,
    pb: Playbook | None = None,
    state: ExecutionState | None = None,
) -> list[Notice]:
    """Record ``decisions``: events, context, step runs, loops, new commands and children, the end.
    ``pb`` and ``state`` (what the decisions were made from) are needed by the decisions that
    follow in the same transaction: a loop's results collected, a child that cannot start.
    Returns the notices of the new commands, to publish after the commit."""
    # The new commands go with the record (one round trip: a step's end pays for each), unless
    # commands are cancelled first: then after the cancel, which must not catch them.
    stops = bool(decisions.cancel or decisions.final)
    created = [(uuid.uuid4(), d) for d in decisions.dispatch]
    await _record(conn, execution_id, decisions, [] if stops else created)
    await loops.store_starts(conn, execution_id, decisions.loops)
    await loops.store_counters(
        conn, execution_id, {name: r.loop for name, r in decisions.steps.items() if r.loop is not None}
    )
    await loops.store_ends(conn, execution_id, decisions.iterations)
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
        await conn.execute(
            """
            UPDATE noetl.iterations SET status = 'cancelled'
            WHERE execution_id = $1 AND status IN ('pending', 'running')
              AND ($2::text[] IS NULL OR step = ANY($2))
            """,
            execution_id,
            None if decisions.final else decisions.cancel,
        )
    if stops and created:
        await _record(conn, execution_id, Decisions(), created)
    if created:
        await loops.mark_running(
            conn, execution_id, [(d.step, d.iteration) for _, d in created if d.iteration is not None]
        )
    notices = [Notice(command_id=cid, execution_id=execution_id, attempt=1) for cid, _ in created]
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
    if decisions.cancel or decisions.final:
        await _cancel_children(conn, execution_id, None if decisions.final else decisions.cancel, decisions)
    if pb is not None and state is not None and (decisions.children or decisions.collect is not None):
        # Only these need the state after the decisions (computing it copies the workload).
        after = state_after(state, decisions)
        for child in decisions.children:
            notices += await _start_child(conn, execution_id, pb, after, child)
            after = await _reloaded(conn, execution_id, after)
        if decisions.collect is not None:
            step = decisions.collect
            results = await loops.results(conn, execution_id, step)
            more = _decide(after, step, lambda: decide.loop_done(pb, after, step, results))
            notices += await apply(conn, execution_id, more, pb, after)
    if decisions.final:
        notices += await _report_to_parent(conn, execution_id, decisions.final)
    return notices


# The engine's events, the step runs that changed, the context and the new commands (with their
# `created` events and the step runs they link to, which exist already unless the engine did not
# list them as changed): one statement, one round trip (a step's end pays for each round trip in
# the latency of the step after it). The events go in their list's order, then the commands', so
# that their ids keep it. With nothing to record ($15 false), the execution's row is left alone.
_RECORD = """
    WITH step AS (
        INSERT INTO noetl.step_runs AS s
            (execution_id, step, status, result, error, attempts, started_at, finished_at)
        SELECT $1::uuid, r.step, r.status, r.result::jsonb, r.error, r.attempts,
               CASE WHEN r.status <> 'pending' THEN now() END,
               CASE WHEN r.status = ANY($11::text[]) THEN now() END
        FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::int[])
            AS r(step, status, result, error, attempts)
        ON CONFLICT (execution_id, step) DO UPDATE SET
            status = excluded.status, result = excluded.result, error = excluded.error,
            attempts = excluded.attempts, updated_at = now(),
            started_at = coalesce(s.started_at, excluded.started_at),
            finished_at = excluded.finished_at
    ), run AS (
        INSERT INTO noetl.step_runs (execution_id, step, status, started_at)
        SELECT DISTINCT $1::uuid, step, 'running', now() FROM unnest($22::text[]) AS step
        ON CONFLICT (execution_id, step) DO NOTHING
    ), command AS (
        INSERT INTO noetl.commands
            (command_id, execution_id, step, iteration, tool, timeout, max_attempts, status)
        SELECT c.id, $1::uuid, c.step, c.iteration, c.tool::jsonb, $20, $21, 'pending'
        FROM unnest($16::uuid[], $17::text[], $18::int[], $19::text[]) AS c(id, step, iteration, tool)
    ), event AS (
        INSERT INTO noetl.events (execution_id, command_id, type, node_name, status, payload)
        SELECT $1::uuid, e.command_id, e.type, e.node_name, e.status, e.payload::jsonb
        FROM (
            SELECT NULL::uuid AS command_id, e.type, e.node_name, e.status, e.payload, 1 AS part, e.n
            FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY
                AS e(type, node_name, status, payload, n)
            UNION ALL
            SELECT c.id, 'created', c.step, NULL, c.payload, 2, c.n
            FROM unnest($16::uuid[], $17::text[], $23::text[]) WITH ORDINALITY AS c(id, step, payload, n)
        ) e
        ORDER BY e.part, e.n
    )
    UPDATE noetl.executions SET ctx = coalesce(ctx, '{}'::jsonb) || $12::jsonb,
        result = CASE WHEN $13 THEN $14::jsonb ELSE result END, updated_at = now()
    WHERE execution_id = $1 AND $15
"""


async def _record(
    conn: asyncpg.Connection, execution_id: UUID, decisions: Decisions, created: list[tuple[UUID, Dispatch]]
) -> None:
    """Store the decisions' events, changed step runs and context writes (and the result of the
    last step that ended well as the execution's), and the ``created`` commands."""
    events = decisions.events
    runs = list(decisions.steps.items())
    done = [r for _, r in runs if r.status == "done"]
    await conn.execute(
        _RECORD,
        execution_id,
        [e.type for e in events],
        [e.node_name for e in events],
        [e.status for e in events],
        [_json(_event_payload(e)) for e in events],
        [name for name, _ in runs],
        [r.status for _, r in runs],
        [_json(r.result) for _, r in runs],
        [r.error for _, r in runs],
        [r.attempts for _, r in runs],
        list(STEP_FINISHED),
        decisions.ctx,
        bool(done),
        done[-1].result if done else None,
        bool(events or runs or decisions.ctx),
        [command_id for command_id, _ in created],
        [d.step for _, d in created],
        [d.iteration for _, d in created],
        [_json(d.tool) for _, d in created],
        STEP_TIMEOUT,
        STEP_MAX_ATTEMPTS,
        # The step runs the engine did not write itself (their INSERTs must not meet in one statement).
        sorted({d.step for _, d in created} - decisions.steps.keys()),
        [
            _json({"tool": d.tool.get("kind"), "timeout": STEP_TIMEOUT, "max_attempts": STEP_MAX_ATTEMPTS})
            for _, d in created
        ],
    )


async def _reloaded(conn: asyncpg.Connection, execution_id: UUID, state: ExecutionState) -> ExecutionState:
    """The state as stored now (a child that ended at once may have moved the parent on)."""
    row = await conn.fetchrow(
        f"SELECT {locks.EXECUTION_COLUMNS} FROM noetl.executions WHERE execution_id = $1", execution_id
    )
    return await load_state(conn, row) if row is not None else state


async def _start_child(
    conn: asyncpg.Connection, execution_id: UUID, pb: Playbook, state: ExecutionState, child: ChildStart
) -> list[Notice]:
    """Create the child execution (same transaction); a playbook that is not in the catalog fails
    the parent's step, saying which."""
    try:
        depth = await locks.depth(conn, execution_id)  # the parent's: its child is one deeper
        if depth >= MAX_CHILD_DEPTH:
            raise NotFound(
                f"{child.path!r} would be nested {depth + 1} deep (at most {MAX_CHILD_DEPTH}): "
                "does a playbook start itself?"
            )
        entry = await catalog.find(conn, child.path, child.version)
    except NotFound as exc:
        error = f"sub-playbook: {exc}"
        if child.iteration is None:
            more = _decide(
                state, child.step, lambda: decide.step_finished(pb, state, child.step, False, None, error)
            )
        else:
            index = child.iteration
            more = _decide(
                state,
                child.step,
                lambda: decide.iteration_finished(pb, state, child.step, index, False, None, error),
            )
        return await apply(conn, execution_id, more, pb, state)
    _, notices = await _create(conn, entry, child.payload, Parent(execution_id, child.step, child.iteration))
    return notices


async def _report_to_parent(conn: asyncpg.Connection, execution_id: UUID, final: str) -> list[Notice]:
    """A child that ended finishes its parent's step (or iteration) with its result, in the same
    transaction; a failed or cancelled child fails it."""
    row = await conn.fetchrow(
        """
        SELECT path, result, error, parent_execution_id, parent_step, parent_iteration
        FROM noetl.executions WHERE execution_id = $1
        """,
        execution_id,
    )
    if row is None or row["parent_execution_id"] is None or row["parent_step"] is None:
        return []
    ok = final == "COMPLETED"
    error = None if ok else f"sub-playbook {row['path']!r} ({execution_id}) {final}: {row['error']}"
    return await step_command_finished(
        conn,
        row["parent_execution_id"],
        row["parent_step"],
        row["parent_iteration"],
        ok,
        row["result"] if ok else None,
        error,
    )


async def _cancel_children(
    conn: asyncpg.Connection, execution_id: UUID, steps: list[str] | None, decisions: Decisions
) -> None:
    """Cancel the running children of the steps named (all when None): a cancelled or failed
    parent stops its sub-playbooks, and theirs."""
    children = await conn.fetch(
        f"""
        SELECT {locks.EXECUTION_COLUMNS} FROM noetl.executions
        WHERE parent_execution_id = $1 AND status = 'RUNNING'
          AND ($2::text[] IS NULL OR parent_step = ANY($2))
        ORDER BY created_at FOR UPDATE
        """,
        execution_id,
        steps,
    )
    reason = f"parent {execution_id} ended: {decisions.error or decisions.final or 'cancelled'}"
    for child in children:
        await _cancel_locked(conn, child, reason)


def _json(value: Any) -> str | None:
    """A jsonb value as JSON text, for a ``text[]`` parameter cast in SQL (asyncpg takes a list
    in a ``jsonb[]`` for one more array dimension); None stays SQL NULL."""
    return None if value is None else json.dumps(value)


def _event_payload(event: Event) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if event.result is not None:
        payload["result"] = event.result
    if event.error is not None:
        payload["error"] = event.error
    if event.iteration is not None:
        payload["iteration"] = event.iteration
    return payload
