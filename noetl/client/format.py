"""Pure printing of executions and the catalog for `noetl status`, `exec` and `catalog` (no I/O).

Everything printed passes through ``clean``: tool output, errors, step and playbook names come
from code that anyone who can submit work wrote, and a terminal obeys escape sequences (clear the
screen, rewrite the title, fake earlier lines), so they are removed before they reach it.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from noetl.tools.registry import describe

PAYLOAD_WIDTH = 100
# ESC sequences (CSI like ESC[2J, OSC like ESC]0;title BEL, two-character ones), then any other
# C0/C1 control character but newline and tab.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, ended by BEL or ST
    r"|\x1b[ -~]?"  # any other ESC and the character after it
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the one-byte CSI
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (newlines and tabs stay)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def _time(value: str | None) -> str:
    """``2024-01-01T12:00:00.123456Z`` -> ``2024-01-01 12:00:00.123``."""
    if not value:
        return "-"
    text = value.replace("T", " ").rstrip("Z")
    head, dot, frac = text.partition(".")
    frac = frac.split("+")[0]
    return f"{head}.{frac[:3]}" if dot else head


def short(value: Any, width: int = PAYLOAD_WIDTH) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    text = clean(text.replace("\n", "\\n"))
    return text if len(text) <= width else text[: width - 3] + "..."


def duration(started: str | None, finished: str | None) -> str:
    """``1.23s`` between two ISO times; ``-`` when either is missing."""
    if not started or not finished:
        return "-"
    seconds = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    return f"{seconds:.2f}s"


def iterations(counts: dict[str, int] | None) -> str:
    """A loop step's ``done/total`` (``, N failed`` when some failed); empty for other steps."""
    if not counts:
        return ""
    failed = f", {counts['failed']} failed" if counts.get("failed") else ""
    return f"{counts['done']}/{counts['total']}{failed}"


def playbook_text(execution: dict[str, Any]) -> str:
    """A playbook's execution: each step with status, duration and attempts; the failed steps'
    errors; the result or the execution's error."""
    lines = [
        f"execution {execution['execution_id']}  {execution['status']}"
        f"  {execution.get('path')} version {execution.get('version')}",
        f"  created {_time(execution.get('created_at'))}  updated {_time(execution.get('updated_at'))}",
    ]
    steps = execution.get("steps") or []
    if steps:
        width = max(4, *(len(s["name"]) for s in steps))
        lines.append(f"{'STEP':<{width}}  {'STATUS':<9}  {'DURATION':>9}  {'ATTEMPTS':>8}  ITERATIONS")
        for step in steps:
            took = duration(step.get("started_at"), step.get("finished_at"))
            lines.append(
                f"{step['name']:<{width}}  {step['status']:<9}  {took:>9}  {step.get('attempts', 0):>8}"
                f"  {iterations(step.get('iterations'))}".rstrip()
            )
        for step in steps:
            if step["status"] == "failed" and step.get("error"):
                lines.append(f"step {step['name']} failed: {short(step['error'])}")
    if execution.get("error"):
        lines.append(f"error: {short(execution['error'])}")
    elif execution.get("result") is not None:
        lines.append(f"result: {short(execution['result'])}")
    return clean("\n".join(lines))


def execution_text(execution: dict[str, Any]) -> str:
    """The execution, for people: a playbook's steps, or a command with its events."""
    if execution.get("steps") is not None:
        return playbook_text(execution)
    lines = [
        f"execution {execution['execution_id']}  {execution['status']}",
        f"  created {_time(execution.get('created_at'))}  updated {_time(execution.get('updated_at'))}",
    ]
    for cmd in execution.get("commands") or []:
        lines.append(
            f"command {cmd['command_id']}  {cmd['status']}  attempt {cmd['attempt']}"
            f"  max_attempts {cmd['max_attempts']}  worker {cmd.get('worker_id') or '-'}"
        )
        lines.append(f"  {short(describe(cmd['tool']))}")
        if cmd.get("result") is not None:
            lines.append(f"  result: {short(cmd['result'])}")
        if cmd.get("error"):
            lines.append(f"  error: {short(cmd['error'])}")
    events = execution.get("events") or []
    if events:
        lines.append("events:")
        width = max(len(e["type"]) for e in events)
        for ev in events:
            payload = f"  {short(ev['payload'])}" if ev.get("payload") else ""
            lines.append(
                f"  {_time(ev.get('created_at'))}  {ev['type']:<{width}}  attempt {ev['attempt']}"
                f"  {ev.get('worker_id') or '-'}{payload}"
            )
    return clean("\n".join(lines))


def executions_table(page: dict[str, Any]) -> str:
    """A page of executions, one a line."""
    items = page.get("items", [])
    if not items:
        return "no executions"
    lines = [f"{'EXECUTION':<36}  {'STATUS':<9}  {'CREATED':<23}  {'UPDATED':<23}  PLAYBOOK"]
    for item in items:
        playbook = f"{item['path']} v{item.get('version')}" if item.get("path") else "-"
        lines.append(
            f"{item['execution_id']:<36}  {item['status']:<9}  {_time(item.get('created_at')):<23}"
            f"  {_time(item.get('updated_at')):<23}  {playbook}"
        )
    if page.get("next"):
        total = f"{page['total']}+" if page.get("total_capped") else page.get("total")
        lines.append(f"({len(items)} shown of {total}; more with --cursor {page['next']})")
    return clean("\n".join(lines))


def catalog_table(entries: list[dict[str, Any]]) -> str:
    """The catalog's latest versions, one a line."""
    if not entries:
        return "the catalog is empty (register a playbook: noetl register playbook -f FILE)"
    width = max(4, *(len(e["path"]) for e in entries))
    lines = [f"{'PATH':<{width}}  VERSION  {'CREATED':<23}  DESCRIPTION"]
    for entry in entries:
        lines.append(
            f"{entry['path']:<{width}}  {entry['version']:>7}  {_time(entry.get('created_at')):<23}"
            f"  {short(entry.get('description') or '', 60)}"
        )
    return clean("\n".join(lines))


def event_line(event: dict[str, Any]) -> str | None:
    """A step entering or ending, and the execution's end, as one plain line (others: None)."""
    line = _event_line(event)
    return clean(line) if line is not None else None


def _event_line(event: dict[str, Any]) -> str | None:
    kind, step = event["event_type"], event.get("node_name")
    if kind == "step.enter":
        return f"step {step}: started"
    if kind == "step.exit":
        return f"step {step}: {event.get('status', '').lower() or 'ended'}"
    if kind == "call.error":
        return f"step {step}: failed: {short(event.get('error') or '')}"
    if kind in ("playbook.completed", "playbook.failed", "execution.cancelled"):
        error = f": {short(event['error'])}" if event.get("error") else ""
        return f"execution {event.get('status')}{error}"
    return None
