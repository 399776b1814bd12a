"""The supervised programs' snapshot: what `noetl run`'s event listener writes and the server reads.

The control socket stays root's (or the launcher user's) alone: the server, which runs as the
unprivileged NOETL_USER, never talks to supervisord. The event listener, which supervisord runs
beside the programs and tells of every state change, keeps the state of each program and writes
it to ``$NOETL_HOME/programs.json`` on every change and at every 5-second tick (with each running
program's memory), readable by NOETL_USER's group and writable by nobody else. A snapshot older
than ``STALE_AFTER`` is from a run that is over (killed before it could remove the file).

The file holds the facts ``ps`` shows any local user (names, states, PIDs, start times, memory):
no argument, environment or credential.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

FILE_NAME = "programs.json"
VERSION = 1
# The listener rewrites the file at least this often (supervisord's TICK_5 event).
REFRESH_SECONDS = 5.0
# Three ticks missed: the listener (and so supervisord) is gone.
STALE_AFTER = 3 * REFRESH_SECONDS


def snapshot_path(home: Path) -> Path:
    return home / FILE_NAME


@dataclass
class ProgramState:
    """One supervised process as the listener last saw it (times: seconds since the epoch)."""

    name: str
    group: str
    state: str
    pid: int | None = None
    start: float | None = None  # when it was last started
    stop: float | None = None  # when it last stopped or exited
    rss_bytes: int | None = None  # while RUNNING, as of the last tick


def encode(programs: list[ProgramState], written_at: float) -> str:
    return json.dumps(
        {"version": VERSION, "written_at": written_at, "programs": [asdict(p) for p in programs]}
    )


def decode(text: str, now: float | None = None) -> list[dict[str, Any]] | None:
    """The programs of a snapshot, as the server shows them (name, group, state, pid, uptime_s,
    rss_bytes, description); None when the snapshot is stale or not one this version wrote."""
    now = time.time() if now is None else now
    try:
        raw = json.loads(text)
        if raw.get("version") != VERSION or now - float(raw["written_at"]) > STALE_AFTER:
            return None
        programs = [ProgramState(**p) for p in raw["programs"]]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # a file of another version, or half a file: no feed rather than a wrong one
    return [shown(p, now) for p in programs]


def shown(p: ProgramState, now: float) -> dict[str, Any]:
    running = p.state == "RUNNING"
    uptime = max(0.0, now - p.start) if running and p.start is not None else None
    return {
        "name": p.name,
        "group": p.group,
        "state": p.state,
        "pid": p.pid if running or p.state == "STOPPING" else None,
        "uptime_s": uptime,
        "rss_bytes": p.rss_bytes if running else None,
        "description": description(p, uptime),
    }


def description(p: ProgramState, uptime: float | None) -> str:
    """supervisorctl's words for the state (its ``_interpretProcessInfo``)."""
    if p.state == "RUNNING":
        return f"pid {p.pid}, uptime {timedelta(seconds=int(uptime or 0))}"
    if p.state in ("FATAL", "BACKOFF"):
        return "Exited too quickly (process log may have details)"
    if p.state in ("STOPPED", "EXITED"):
        if p.start is None or p.stop is None:
            return "Not started"
        return datetime.fromtimestamp(p.stop).strftime("%b %d %I:%M %p")
    return ""
