"""Pure printing of executions for `noetl status` (no I/O, easy to test)."""

from __future__ import annotations

import json
from typing import Any

from noetl.tools.registry import describe

PAYLOAD_WIDTH = 100


def _time(value: str | None) -> str:
    """``2024-01-01T12:00:00.123456Z`` -> ``2024-01-01 12:00:00.123``."""
    if not value:
        return "-"
    text = value.replace("T", " ").rstrip("Z")
    head, dot, frac = text.partition(".")
    frac = frac.split("+")[0]
    return f"{head}.{frac[:3]}" if dot else head


def _short(value: Any, width: int = PAYLOAD_WIDTH) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 3] + "..."


def execution_text(execution: dict[str, Any]) -> str:
    """The execution, its commands and its events, for people."""
    lines = [
        f"execution {execution['execution_id']}  {execution['status']}",
        f"  created {_time(execution.get('created_at'))}  updated {_time(execution.get('updated_at'))}",
    ]
    for cmd in execution.get("commands", []):
        lines.append(
            f"command {cmd['command_id']}  {cmd['status']}  attempt {cmd['attempt']}"
            f"  max_attempts {cmd['max_attempts']}  worker {cmd.get('worker_id') or '-'}"
        )
        lines.append(f"  {_short(describe(cmd['tool']))}")
        if cmd.get("result") is not None:
            lines.append(f"  result: {_short(cmd['result'])}")
        if cmd.get("error"):
            lines.append(f"  error: {_short(cmd['error'])}")
    events = execution.get("events", [])
    if events:
        lines.append("events:")
        width = max(len(e["type"]) for e in events)
        for ev in events:
            payload = f"  {_short(ev['payload'])}" if ev.get("payload") else ""
            lines.append(
                f"  {_time(ev.get('created_at'))}  {ev['type']:<{width}}  attempt {ev['attempt']}"
                f"  {ev.get('worker_id') or '-'}{payload}"
            )
    return "\n".join(lines)


def executions_table(page: dict[str, Any]) -> str:
    """A page of executions, one a line."""
    items = page.get("items", [])
    if not items:
        return "no executions"
    lines = [f"{'EXECUTION':<36}  {'STATUS':<9}  {'CREATED':<23}  UPDATED"]
    for item in items:
        lines.append(
            f"{item['execution_id']:<36}  {item['status']:<9}  {_time(item.get('created_at')):<23}"
            f"  {_time(item.get('updated_at'))}"
        )
    shown = page.get("offset", 0) + len(items)
    if page.get("total", 0) > shown:
        lines.append(f"({shown} of {page['total']}; use --limit/--offset for more)")
    return "\n".join(lines)
