"""Submissions (`noetl submit`, POST /api/executions): many executions, each with its one command
and its ``created`` event, inserted in one statement."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from noetl.protocol.nats import Notice


@dataclass(frozen=True)
class Submission:
    """One validated submission: the tool as stored (``tool_spec``), its timeout and max_attempts."""

    tool: dict[str, Any]
    timeout: float
    max_attempts: int


async def create_executions(conn: asyncpg.Connection, submissions: Sequence[Submission]) -> list[Notice]:
    """Insert an execution, its one command and a ``created`` event for each submission, all in one
    statement: one transaction, so all of them or none.

    Returns each one's notice, in the order given, to publish once the statement has committed.
    """
    execution_ids = [uuid.uuid4() for _ in submissions]
    command_ids = [uuid.uuid4() for _ in submissions]
    await conn.execute(
        """
        WITH given AS (
            SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[], $4::float8[], $5::int[], $6::jsonb[])
                AS g(execution_id, command_id, tool, timeout, max_attempts, created)
        ), execution AS (
            INSERT INTO noetl.executions (execution_id, status) SELECT execution_id, 'RUNNING' FROM given
        ), command AS (
            INSERT INTO noetl.commands (command_id, execution_id, tool, timeout, max_attempts, status)
            SELECT command_id, execution_id, tool, timeout, max_attempts, 'pending' FROM given
        )
        INSERT INTO noetl.events (execution_id, command_id, type, payload)
        SELECT execution_id, command_id, 'created', created FROM given
        """,
        execution_ids,
        command_ids,
        [s.tool for s in submissions],
        [s.timeout for s in submissions],
        [s.max_attempts for s in submissions],
        [{"tool": s.tool["kind"], "timeout": s.timeout, "max_attempts": s.max_attempts} for s in submissions],
    )
    return [
        Notice(command_id=cid, execution_id=eid, attempt=1)
        for eid, cid in zip(execution_ids, command_ids, strict=True)
    ]
