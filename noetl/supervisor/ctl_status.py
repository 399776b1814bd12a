"""`noetl ctl status`: supervisord's process info + each process's RSS and CPU -> rows (see ctl_table).

On Linux the figures are read from /proc (three small files a process); psutil, which reads the
same files, costs ~30 ms to import, a third of what the whole command may take. Elsewhere psutil.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

from noetl.supervisor.ctl_table import Row

TYPE_CHECKING = False  # typing costs ~4 ms to import; mypy and ruff read this name as its
if TYPE_CHECKING:
    from typing import Any

# (rss bytes, CPU seconds user+system, start time in seconds since the epoch) of a live process.
Usage = tuple[int, float, float]


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def proc_usage(pid: int) -> Usage | None:
    """From /proc: what psutil's memory_info().rss, cpu_times() and create_time() give."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
        with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
            resident_pages = int(fh.read().split()[1])
        # Fields after the command name, which may hold spaces and ')': field 3 (state) is [0].
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        started = _boot_time() + int(fields[19]) / ticks  # starttime
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE"), cpu, started


def psutil_usage(pid: int) -> Usage | None:
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            times = proc.cpu_times()
            return proc.memory_info().rss, times.user + times.system, proc.create_time()
    except psutil.Error:
        return None


def default_usage() -> Callable[[int], Usage | None]:
    return proc_usage if os.path.exists("/proc/self/statm") else psutil_usage


def templates_rss(pid: int, usage: Callable[[int], Usage | None]) -> int:
    """The RSS of a worker's warm templates (its children that fork its python and duckdb
    commands): counted in the worker's. Found through /proc (Linux, where templates run)."""
    from noetl.tools.warm_mark import is_template

    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", encoding="ascii") as fh:
                children = [int(child) for child in fh.read().split()]
        except (OSError, ValueError):
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/cmdline", "rb") as fh:
                    cmdline = fh.read().decode(errors="replace").split("\0")
            except OSError:
                continue
            found = usage(child) if is_template(cmdline) else None
            if found is not None:
                total += found[0]
    return total


def rows(
    infos: Iterable[dict[str, Any]],
    now: float | None = None,
    usage: Callable[[int], Usage | None] | None = None,
) -> list[Row]:
    now = time.time() if now is None else now
    usage = usage or default_usage()
    result = []
    for info in infos:
        pid = int(info.get("pid") or 0) or None
        rss = cpu = uptime = None
        if pid is not None and info.get("statename") == "RUNNING":
            uptime = max(0.0, now - float(info.get("start") or now))
            found = usage(pid)
            if found is not None:
                rss, cpu_seconds, started = found
                rss += templates_rss(pid, usage)
                cpu = 100.0 * cpu_seconds / max(now - started, 1e-3)
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
