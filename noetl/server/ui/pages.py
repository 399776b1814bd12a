"""The read pages: overview, catalog, one playbook, executions, one execution, a step, workers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from noetl.engine.playbook import PlaybookError, parse_playbook
from noetl.protocol.words import EVENT_TYPES, EXECUTION_FINISHED, EXECUTION_STATUSES, ExecutionStatus
from noetl.server import paging
from noetl.server.metrics import WORKER_STALE_SECONDS
from noetl.server.problems import NotFound
from noetl.server.programs import read_programs
from noetl.server.queries import catalog, executions, workers
from noetl.server.queries import overview as figures
from noetl.server.services import ServicesDep
from noetl.server.ui import reads
from noetl.server.ui.graph import layout
from noetl.server.ui.highlight import highlight
from noetl.server.ui.render import page, render
from noetl.server.ui.session import Keys

router = APIRouter()

PAGE_SIZE = 50
FAILURES_SHOWN = 10
EVENTS_SHOWN = 500


def _keys(request: Request) -> Keys:
    keys: Keys = request.app.state.keys
    return keys


KeysDep = Annotated[Keys, Depends(_keys)]


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, services: ServicesDep, keys: KeysDep) -> Response:
    """Executions by status over the last hour and day, the latest failures, the workers online,
    and the programs `noetl run` supervises (when it does)."""
    now = datetime.now(UTC)
    async with services.db.connection("read") as conn:
        hour = await figures.status_counts(conn, now - timedelta(hours=1))
        day = await figures.status_counts(conn, now - timedelta(days=1))
        failures = await figures.recent_failures(conn, FAILURES_SHOWN)
        online = await figures.workers_load(conn)
    return page(
        request,
        keys,
        "overview.html",
        statuses=EXECUTION_STATUSES,
        hour=hour,
        day=day,
        failures=failures,
        workers=online,
        programs=await read_programs(services.settings),
    )


@router.get("/ui", include_in_schema=False)
@router.get("/ui/", include_in_schema=False)
async def home() -> RedirectResponse:
    return RedirectResponse("/", status_code=307)


@router.get("/ui/catalog", response_class=HTMLResponse)
async def catalog_list(request: Request, services: ServicesDep, keys: KeysDep) -> Response:
    async with services.db.connection("read") as conn:
        entries = await catalog.latest(conn, None, 1000)
    return page(request, keys, "catalog.html", entries=entries)


@router.get("/ui/catalog/{path:path}", response_class=HTMLResponse)
async def playbook_page(
    request: Request,
    path: str,
    services: ServicesDep,
    keys: KeysDep,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    async with services.db.connection("read") as conn:
        entry = await catalog.find(conn, path, version)
        versions = await reads.versions(conn, path)
    return playbook_view(request, keys, entry, versions)


def playbook_view(
    request: Request,
    keys: Keys,
    entry: dict[str, Any],
    versions: list[dict[str, Any]],
    payload_text: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    """One playbook: its YAML, versions, step graph and the Run form (with ``error`` after a bad post)."""
    try:
        pb = parse_playbook(entry["content"])
    except PlaybookError as exc:  # registered by an older noetl whose rules were looser
        pb, error = None, error or f"this version no longer parses: {exc}"
    if payload_text is None:
        payload_text = json_text(pb.workload if pb is not None else {})
    return page(
        request,
        keys,
        "playbook.html",
        status_code,
        entry=entry,
        versions=versions,
        yaml=highlight(entry["content"]),
        graph=layout(pb) if pb is not None else None,
        payload=payload_text,
        error=error,
    )


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@router.get("/ui/executions", response_class=HTMLResponse)
async def executions_page(
    request: Request,
    services: ServicesDep,
    keys: KeysDep,
    status: ExecutionStatus | None = None,
    path: Annotated[str | None, Query(max_length=1000)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    partial: bool = False,
) -> Response:
    """Executions newest first, by status and path, a page at a time (keyset: ``cursor``)."""
    path = path.strip() or None if path else None
    after = paging.time_and_id(cursor) if cursor else None
    async with services.db.connection("read") as conn:
        # The API's own list (its count, up to the cap, is not shown: the first page refreshes itself).
        items, _, _ = await executions.list_executions(conn, status, PAGE_SIZE, 0, after, None, path)
    last = items[-1] if len(items) == PAGE_SIZE else None
    following = paging.encode(last["created_at"].isoformat(), str(last["execution_id"])) if last else None
    context: dict[str, Any] = {
        "items": items,
        "status": status,
        "path": path,
        "cursor": cursor,
        "next": following,
    }
    if partial:
        return HTMLResponse(render("executions_rows.html", **context), headers={"Cache-Control": "no-store"})
    return page(request, keys, "executions.html", statuses=EXECUTION_STATUSES, **context)


@router.get("/ui/executions/{execution_id}", response_class=HTMLResponse)
async def execution_page(
    request: Request, execution_id: UUID, services: ServicesDep, keys: KeysDep
) -> Response:
    async with services.db.connection("read") as conn:
        found = await executions.get_execution(conn, execution_id)
        if found is None:
            raise NotFound(f"no execution {execution_id}")
        children, _, _ = await executions.list_executions(conn, None, 100, parent_execution_id=execution_id)
        events = await executions.events_page(conn, execution_id, 0, EVENTS_SHOWN)
        pb = await catalog.playbook(conn, int(found["catalog_id"])) if found["catalog_id"] else None
    steps = {s["name"]: s for s in found.get("steps") or []}
    names = list(pb.steps) if pb is not None else []
    return page(
        request,
        keys,
        "execution.html",
        execution=found,
        finished=found["status"] in EXECUTION_FINISHED,
        graph=layout(pb) if pb is not None else None,
        steps=steps,
        step_names=names,
        children=children,
        events=events,
        event_types=EVENT_TYPES,
        last_event=events[-1]["event_id"] if events else 0,
    )


@router.get("/ui/executions/{execution_id}/steps/{step:path}", response_class=HTMLResponse)
async def step_detail(execution_id: UUID, step: str, services: ServicesDep) -> Response:
    """A step's input, result or error, attempts and durations (a fragment for the side panel)."""
    async with services.db.connection("read") as conn:
        summary = await executions.step_summary(conn, execution_id)
        commands = await reads.step_commands(conn, execution_id, step)
    run = next((s for s in summary if s["name"] == step), None)
    html = render("step.html", name=step, run=run, commands=commands)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _worker_state(worker: dict[str, Any], now: datetime) -> str:
    if worker["status"] != "online":
        return "offline"
    silent = (now - worker["heartbeat_at"]).total_seconds()
    return "online" if silent <= WORKER_STALE_SECONDS else "silent"


@router.get("/ui/workers", response_class=HTMLResponse)
async def workers_page(
    request: Request, services: ServicesDep, keys: KeysDep, partial: bool = False
) -> Response:
    async with services.db.connection("read") as conn:
        found = await workers.list_workers(conn, 1000)
        running = await reads.commands_of(conn, [c for w in found for c in w["running"]])
    now = datetime.now(UTC)
    rows = [{**w, "state": _worker_state(w, now), "now": now} for w in found]
    if partial:
        html = render("workers_rows.html", workers=rows, running=running, now=now)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})
    return page(request, keys, "workers.html", workers=rows, running=running, now=now)
