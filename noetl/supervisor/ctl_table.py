"""Pure printing of `noetl ctl status`: rows in, text out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Row:
    name: str
    group: str
    state: str
    pid: int | None
    uptime: float | None  # seconds
    rss: int | None  # bytes
    cpu_percent: float | None  # average since start
    description: str


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def size(value: int | None) -> str:
    if value is None:
        return "-"
    mib = value / (1024 * 1024)
    return f"{mib:.1f}M"


def table(rows: Sequence[Row]) -> str:
    header = ("NAME", "STATE", "PID", "UPTIME", "RSS", "CPU%")
    body = [
        (
            row.name,
            row.state,
            "-" if row.pid is None else str(row.pid),
            duration(row.uptime),
            size(row.rss),
            "-" if row.cpu_percent is None else f"{row.cpu_percent:.1f}",
        )
        for row in rows
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
        for r in [header, *body]
    ]
    return "\n".join(lines)


def as_json(rows: Sequence[Row]) -> str:
    import json

    return json.dumps([asdict(row) for row in rows], indent=2)
