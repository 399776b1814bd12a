"""Server-sent events of one execution: each change of its steps, its new events, its end.

The stream polls the execution's events by key (``event_id`` above the last one sent, less a
small overlap: one index range probe) four times a second on the read lane, and sends an update
only when something happened, so a step's change reaches the page within a second without a
reload. A stream ends when the execution has ended and everything was sent, or after
``STREAM_SECONDS`` (so neither a server stop nor a proxy waits on it): the browser's EventSource
then reconnects and resumes from ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from noetl.protocol.words import EXECUTION_FINISHED
from noetl.server.db import DatabaseUnavailable
from noetl.server.queries import executions
from noetl.server.services import Services, ServicesDep
from noetl.server.ui import reads
from noetl.server.ui.render import preview

router = APIRouter()

POLL_SECONDS = 0.25
STREAM_SECONDS = 60.0
BATCH = 200  # events per update at most; a backlog drains over several polls
OVERLAP = 1000  # event ids read again on each poll, for events that committed late


def step_state(step: dict[str, Any]) -> dict[str, Any]:
    """What the graph needs of a step (never its result: the side panel fetches that)."""
    return {
        "name": step["name"],
        "status": step["status"],
        "attempts": step["attempts"],
        "iterations": step["iterations"],
        "started_at": step["started_at"],
        "finished_at": step["finished_at"],
    }


def event_row(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": event["event_id"],
        "event_type": event["event_type"],
        "node_name": event["node_name"],
        "status": event["status"],
        "created_at": event["created_at"],
        "error": event["error"],
        "result": preview(event["result"]),
    }


def sse(kind: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


async def updates(services: Services, execution_id: UUID, after: int) -> AsyncIterator[str]:
    yield "retry: 500\n\n"
    last, shown_status = after, None
    # Event ids come from one sequence but commit in any order: an id below the last one sent
    # may still appear. Each poll reads again from OVERLAP ids back and sends what it has not
    # sent (the page drops an id it already shows, so a stream that resumes may repeat a few).
    sent: set[int] = set()
    deadline = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < deadline:
        floor = max(0, last - OVERLAP)
        sent = {i for i in sent if i > floor}
        try:
            async with services.db.connection("read") as conn:
                brief = await reads.execution_brief(conn, execution_id)
                found = await executions.events_page(conn, execution_id, floor, BATCH + len(sent))
                events = [e for e in found if e["event_id"] not in sent]
                changed = bool(events) or (brief is not None and brief["status"] != shown_status)
                steps = await executions.step_summary(conn, execution_id) if changed else []
        except DatabaseUnavailable:  # busy or down: the page keeps what it shows; try again
            await asyncio.sleep(1)
            continue
        if brief is None:
            yield sse("gone", {})
            return
        if changed:
            sent.update(e["event_id"] for e in events)
            last = max([last, *sent])
            shown_status = brief["status"]
            data = {
                "status": brief["status"],
                "error": brief["error"],
                "finished_at": brief["finished_at"],
                "steps": [step_state(s) for s in steps],
                "events": [event_row(e) for e in events],
            }
            yield sse("update", data, last)
        if brief["status"] in EXECUTION_FINISHED and len(events) < BATCH:
            yield sse("end", {"status": brief["status"]})
            return
        await asyncio.sleep(POLL_SECONDS)


@router.get("/ui/executions/{execution_id}/live")
async def live(
    request: Request, execution_id: UUID, services: ServicesDep, after: int = 0
) -> StreamingResponse:
    resumed = request.headers.get("last-event-id", "")
    start = int(resumed) if resumed.isdigit() else max(0, after)
    return StreamingResponse(
        updates(services, execution_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
