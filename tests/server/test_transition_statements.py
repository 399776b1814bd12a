"""A step's end on a real PostgreSQL, at the level of ``transitions``: what it writes, in how many
statements (each one is a round trip inside the transaction the next step waits for), and the
lock order that a sub-playbook's end still keeps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import pytest

from noetl.engine.playbook import parse_playbook
from noetl.server.db import connect_once
from noetl.server.migrations import migrate
from noetl.server.queries import catalog, chains, claims, command_batches, commands, locks, transitions
from noetl.settings import load_settings
from tests.server.conftest import clean_env

pytestmark = pytest.mark.integration

TWO_STEPS = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: two, path: tests/statements}
workflow:
  - step: start
    tool: {kind: python, code: "result = 1"}
    next: second
  - step: second
    tool: {kind: python, code: "result = [2, {'list': 'as a result'}]"}
"""


def run(pg_env: dict[str, str], scenario: Callable[[asyncpg.Connection], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        conn = await connect_once(load_settings(clean_env(**pg_env)))
        try:
            await migrate(conn)
            await scenario(conn)
        finally:
            await conn.close()

    asyncio.run(main())


async def _started(conn: asyncpg.Connection) -> uuid.UUID:
    entry, _ = await catalog.register(conn, parse_playbook(TWO_STEPS))
    execution_id, notices = await transitions.start(conn, entry, {})
    assert len(notices) == 1
    return execution_id


async def _statements(conn: asyncpg.Connection, call: Callable[[], Any]) -> tuple[Any, list[str]]:
    """What ``call()`` returned and the statements it sent on ``conn``."""
    sent: list[str] = []

    def logged(record: Any) -> None:
        sent.append(record.query)

    conn.add_query_logger(logged)
    try:
        answer = await call()
        await asyncio.sleep(0)  # the logger's calls are scheduled on the loop
    finally:
        conn.remove_query_logger(logged)
    return answer, sent


def test_handing_the_next_command_to_the_reporter_is_one_more_statement(pg_env: dict[str, str]) -> None:
    async def scenario(conn: asyncpg.Connection) -> None:
        execution_id = await _started(conn)
        take = chains.Take("w1", 30.0, "chain c 1")
        async with conn.transaction():
            notices = await transitions.step_command_finished(
                conn, execution_id, "start", None, True, 1, None
            )
            (handed, rest), sent = await _statements(conn, lambda: chains.hand(conn, take, notices))
        # The claim route's own statement: the lease and its `claimed` and `started` events.
        assert len(sent) == 1, "\n".join(" ".join(q.split())[:70] for q in sent)
        assert rest == [] and handed is not None
        assert (handed["command_id"], handed["attempt"], handed["started"]) == (
            notices[0].command_id,
            1,
            True,
        )
        row = await conn.fetchrow(
            "SELECT status, worker_id, claim_request, published_at FROM noetl.commands WHERE command_id = $1",
            handed["command_id"],
        )
        assert dict(row) == {
            "status": "claimed",
            "worker_id": "w1",
            "claim_request": "chain c 1",
            "published_at": None,
        }
        types = await conn.fetch(
            "SELECT type FROM noetl.events WHERE command_id = $1 ORDER BY event_id", handed["command_id"]
        )
        assert [t["type"] for t in types] == ["created", "claimed", "started"]

    run(pg_env, scenario)


def test_a_steps_end_is_decided_and_recorded_in_two_statements(pg_env: dict[str, str]) -> None:
    async def scenario(conn: asyncpg.Connection) -> None:
        execution_id = await _started(conn)
        async with conn.transaction():
            notices, sent = await _statements(
                conn,
                lambda: transitions.step_command_finished(
                    conn, execution_id, "start", None, True, [1, {"nested": [True, None]}], None
                ),
            )
        # The execution's row (locked) with its state; the engine's writes with the next command.
        assert len(sent) == 2, "\n".join(" ".join(q.split())[:70] for q in sent)
        assert len(notices) == 1
        runs = {
            r["step"]: dict(r)
            for r in await conn.fetch(
                "SELECT step, status, result, started_at IS NOT NULL AS started, "
                "finished_at IS NOT NULL AS finished FROM noetl.step_runs WHERE execution_id = $1",
                execution_id,
            )
        }
        assert runs == {
            "start": {
                "step": "start",
                "status": "done",
                "result": [1, {"nested": [True, None]}],
                "started": True,
                "finished": True,
            },
            "second": {
                "step": "second",
                "status": "running",
                "result": None,
                "started": True,
                "finished": False,
            },
        }
        command = await conn.fetchrow(
            "SELECT command_id, step, status, tool, timeout, max_attempts FROM noetl.commands "
            "WHERE execution_id = $1 AND step = 'second'",
            execution_id,
        )
        assert command is not None and command["command_id"] == notices[0].command_id
        assert (command["status"], command["timeout"], command["max_attempts"]) == (
            "pending",
            transitions.STEP_TIMEOUT,
            transitions.STEP_MAX_ATTEMPTS,
        )
        assert command["tool"]["code"] == "result = [2, {'list': 'as a result'}]"
        events = await conn.fetch(
            "SELECT type, node_name, command_id, payload FROM noetl.events "
            "WHERE execution_id = $1 ORDER BY event_id",
            execution_id,
        )
        # The engine's events of the step's end in their order, then the next command's creation.
        tail = [(e["type"], e["node_name"]) for e in events][-4:]
        assert tail == [
            ("call.done", "start"),
            ("step.exit", "start"),
            ("step.enter", "second"),
            ("created", "second"),
        ]
        assert events[-1]["command_id"] == command["command_id"]
        assert events[-1]["payload"] == {
            "tool": "python",
            "timeout": transitions.STEP_TIMEOUT,
            "max_attempts": transitions.STEP_MAX_ATTEMPTS,
        }
        assert events[-4]["payload"] == {"result": [1, {"nested": [True, None]}]}
        stored = await conn.fetchval(
            "SELECT result FROM noetl.executions WHERE execution_id = $1", execution_id
        )
        assert stored == [1, {"nested": [True, None]}]

    run(pg_env, scenario)


def test_a_reported_steps_end_with_the_next_command_handed_is_seven_statements(
    pg_env: dict[str, str],
) -> None:
    """The whole completion as the worker's batched report makes it (``take``: chained dispatch),
    every round trip counted: BEGIN with its settings, the execution's lock, the command's row
    with the execution's state, its end, the engine's writes with the next command, its claim,
    COMMIT."""

    async def report(conn: asyncpg.Connection, execution_id: uuid.UUID) -> Any:
        first = await conn.fetchval(
            "SELECT command_id FROM noetl.commands WHERE execution_id = $1 AND step = 'start'", execution_id
        )
        ask = await _completion(conn, first, take=1)
        return await _statements(conn, lambda: command_batches.record_all(conn, [ask]))

    async def scenario(conn: asyncpg.Connection) -> None:
        await report(conn, await _started(conn))  # asyncpg's first use reads the types it meets
        execution_id = await _started(conn)
        (recorded,), sent = await report(conn, execution_id)
        assert len(sent) == 7, "\n".join(" ".join(q.split())[:70] for q in sent)
        assert sent[0].startswith("BEGIN;") and sent[-1] == "COMMIT"
        assert isinstance(recorded, commands.Recorded) and recorded.stored
        assert recorded.notices == () and recorded.handed is not None
        statuses = {
            r["step"]: (r["status"], r["worker_id"])
            for r in await conn.fetch(
                "SELECT step, status, worker_id FROM noetl.commands WHERE execution_id = $1", execution_id
            )
        }
        assert statuses == {"start": ("completed", "w1"), "second": ("claimed", "w1")}
        assert not conn.is_in_transaction()

    run(pg_env, scenario)


FAN_IN = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fan, path: tests/statements_fan}
workflow:
  - step: start
    next:
      spec: {mode: inclusive}
      arcs: [{step: a}, {step: b}]
  - step: a
    tool: {kind: python, code: "result = 'a'"}
    next: reduce
  - step: b
    tool: {kind: python, code: "result = 'b'"}
    next: reduce
  - step: reduce
    tool: {kind: python, code: "result = 'r'"}
"""


async def _completion(
    conn: asyncpg.Connection, command_id: uuid.UUID, take: int = 0
) -> command_batches.EventAsk:
    """Claim the command for worker w1 and make its ``completed`` report."""
    lease = await claims.claim(conn, command_id, "w1", 30.0, f"claim {command_id}", start=True)
    return command_batches.EventAsk(
        command_id,
        "w1",
        lease["attempt"],
        lease["lease"],
        "completed",
        {"result": 1},
        0,
        chains.take_of(command_id, lease["attempt"], "w1", take, 30.0),
    )


def test_two_branches_ending_in_one_batch_join_once(pg_env: dict[str, str]) -> None:
    """The state read with the commands' rows serves the first transition of an execution only:
    the second branch's end sees the first one's, and the join step enters, once."""

    async def scenario(conn: asyncpg.Connection) -> None:
        entry, _ = await catalog.register(conn, parse_playbook(FAN_IN))
        execution_id, notices = await transitions.start(conn, entry, {})
        assert len(notices) == 2
        asks = [await _completion(conn, n.command_id) for n in notices]
        recorded = await command_batches.record_all(conn, asks)
        assert all(isinstance(r, commands.Recorded) and r.stored for r in recorded)
        created = [n for r in recorded if isinstance(r, commands.Recorded) for n in r.notices]
        steps = await conn.fetch(
            "SELECT step FROM noetl.commands WHERE execution_id = $1 ORDER BY step", execution_id
        )
        assert [r["step"] for r in steps] == ["a", "b", "reduce"]
        assert len(created) == 1
        runs = await conn.fetch(
            "SELECT step, status FROM noetl.step_runs WHERE execution_id = $1 ORDER BY step", execution_id
        )
        assert [(r["step"], r["status"]) for r in runs] == [
            ("a", "done"),
            ("b", "done"),
            ("reduce", "running"),
            ("start", "done"),
        ]

    run(pg_env, scenario)


def test_a_by_key_transaction_plans_by_key_then_commits_or_rolls_back(pg_env: dict[str, str]) -> None:
    """Its settings hold inside it only; an error inside rolls it back; nested, it is a savepoint."""

    settings = "SELECT current_setting('enable_seqscan'), current_setting('plan_cache_mode')"

    async def scenario(conn: asyncpg.Connection) -> None:
        default = tuple(await conn.fetchrow(settings))
        assert default == ("on", "auto")
        await conn.execute("CREATE TEMP TABLE kept (n int)")
        async with commands.by_key(conn):
            assert tuple(await conn.fetchrow(settings)) == ("off", "force_generic_plan")
            await conn.execute("INSERT INTO kept VALUES (1)")
        assert tuple(await conn.fetchrow(settings)) == default
        with pytest.raises(asyncpg.UniqueViolationError):
            async with commands.by_key(conn):
                await conn.execute("INSERT INTO kept VALUES (2)")
                await conn.execute("CREATE UNIQUE INDEX ON kept (n)")
                await conn.execute("INSERT INTO kept VALUES (2)")
        assert not conn.is_in_transaction()
        async with conn.transaction():
            await conn.execute("INSERT INTO kept VALUES (3)")
            with pytest.raises(asyncpg.UniqueViolationError):
                async with commands.by_key(conn):
                    await conn.execute("CREATE UNIQUE INDEX ON kept (n)")
                    await conn.execute("INSERT INTO kept VALUES (3)")
            assert tuple(await conn.fetchrow(settings)) == default
        assert [r["n"] for r in await conn.fetch("SELECT n FROM kept ORDER BY n")] == [1, 3]

    run(pg_env, scenario)


def test_a_child_executions_lock_still_takes_its_parents_first(pg_env: dict[str, str]) -> None:
    """One statement locks an execution without ancestors; a child's lock waits for its parent's."""

    async def scenario(conn: asyncpg.Connection) -> None:
        parent = await _started(conn)
        child = uuid.uuid4()
        await conn.execute(
            "INSERT INTO noetl.executions (execution_id, status, parent_execution_id, parent_step) "
            "VALUES ($1, 'RUNNING', $2, 'start')",
            child,
            parent,
        )
        async with conn.transaction():
            row, sent = await _statements(conn, lambda: locks.lock_execution(conn, parent))
            assert row["execution_id"] == parent
            assert len(sent) == 1, sent

        other = await connect_once(load_settings(clean_env(**pg_env)))
        try:
            holder = conn.transaction()
            await holder.start()
            await conn.execute("SELECT 1 FROM noetl.executions WHERE execution_id = $1 FOR UPDATE", parent)

            async def lock_child() -> Any:
                async with other.transaction():
                    return await locks.lock_execution(other, child)

            locking = asyncio.ensure_future(lock_child())
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'"
            while not await conn.fetchval(waiting, other.get_server_pid()):
                assert not locking.done(), "the child's lock did not wait for its parent's"
                await asyncio.sleep(0.01)
            await holder.commit()
            row = await locking
            assert row["execution_id"] == child
        finally:
            await other.close()

    run(pg_env, scenario)
