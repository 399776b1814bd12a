"""Executions: submit work, read one, list them (clients)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from noetl.protocol.words import ExecutionStatus
from noetl.server import paging
from noetl.server.models import ExecutionPage, ExecutionView, SubmitRequest, Submitted
from noetl.server.problems import NotFound
from noetl.server.queries import executions
from noetl.server.queries.submissions import Submission
from noetl.server.services import ServicesDep, error_responses
from noetl.tools.registry import tool_spec

router = APIRouter(tags=["executions"])


@router.post(
    "/api/executions",
    status_code=201,
    response_model=Submitted,
    responses=error_responses(401, 413, 422, 503),
)
async def submit(body: SubmitRequest, services: ServicesDep) -> dict[str, Any]:
    """Create an execution with one command; its notice is published after the commit.
    Concurrent submissions share a statement (``Submitter``)."""
    submission = Submission(tool_spec(body.tool), body.timeout, body.max_attempts)
    notice = await services.submitter.submit(submission)
    return {"execution_id": notice.execution_id, "command_id": notice.command_id}


@router.get(
    "/api/executions/{execution_id}",
    response_model=ExecutionView,
    responses=error_responses(404, 422, 503),
)
async def read(execution_id: UUID, services: ServicesDep) -> dict[str, Any]:
    async with services.db.connection() as conn:
        found = await executions.get_execution(conn, execution_id)
    if found is None:
        raise NotFound(f"no execution {execution_id}")
    return found


@router.get("/api/executions", response_model=ExecutionPage, responses=error_responses(422, 503))
async def list_(
    services: ServicesDep,
    status: ExecutionStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    # Kept for older clients, and bounded: skipping rows costs as much as reading them.
    offset: Annotated[int, Query(ge=0, le=paging.TOTAL_CAP)] = 0,
    parent_execution_id: UUID | None = None,
    path: Annotated[str | None, Query(min_length=1, max_length=1000)] = None,
) -> dict[str, Any]:
    """Executions, newest first, optionally only those with ``status``, only the runs of the
    playbook at ``path``, or only the children (sub-playbooks) of ``parent_execution_id``; page on
    with ``next``."""
    after = paging.time_and_id(cursor) if cursor is not None else None
    async with services.db.connection("read") as conn:
        items, total, capped = await executions.list_executions(
            conn, status, limit, offset, after, parent_execution_id, path
        )
    last = items[-1] if len(items) == limit else None
    following = paging.encode(last["created_at"].isoformat(), str(last["execution_id"])) if last else None
    return {
        "items": items,
        "total": total,
        "total_capped": capped,
        "limit": limit,
        "offset": offset,
        "next": following,
    }
