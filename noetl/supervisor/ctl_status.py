"""`noetl ctl status`: supervisord's process info + psutil figures -> rows (printed by ctl_table)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from noetl.supervisor.ctl_table import Row


def _templates_rss(proc: Any) -> int:
    """The memory of a worker's warm templates (its children that fork its python commands)
    counts in the worker's."""
    import psutil

    from noetl.tools.warm_template import is_template

    total = 0
    for child in proc.children():
        try:
            if is_template(child.cmdline()):
                total += child.memory_info().rss
        except psutil.Error:
            continue
    return total


def rows(infos: Iterable[dict[str, Any]], now: float | None = None) -> list[Row]:
    import psutil

    now = time.time() if now is None else now
    result = []
    for info in infos:
        pid = int(info.get("pid") or 0) or None
        rss = cpu = uptime = None
        if pid is not None and info.get("statename") == "RUNNING":
            uptime = max(0.0, now - float(info.get("start") or now))
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    rss = proc.memory_info().rss + _templates_rss(proc)
                    times = proc.cpu_times()
                    alive = max(now - proc.create_time(), 1e-3)
                    cpu = 100.0 * (times.user + times.system) / alive
            except psutil.Error:
                pass
        result.append(
            Row(
                name=str(info["name"]),
                group=str(info["group"]),
                state=str(info.get("statename", "UNKNOWN")),
                pid=pid,
                uptime=uptime,
                rss=rss,
                cpu_percent=cpu,
                description=str(info.get("description", "")),
            )
        )
    return result
