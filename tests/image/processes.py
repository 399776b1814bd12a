"""Who runs as whom in a container: the image's processes (PID 1 and everything under it) told
apart from the processes the engine enters into the container from outside.

`docker exec` and the HEALTHCHECK both start their process through runc, which joins the
container's namespaces and only then takes the container's user: for a moment the entering
process (`runc init`) is uid 0 inside the container. Its parent is the runc on the host, outside
the container's PID namespace, so inside the container its parent PID reads 0, as does that of
everything else entered from outside. PID 1 is the only process of the image with parent 0;
every process the image starts, and every orphan (re-parented to PID 1, the reaper), stays
under it. What was seen on the engine here: docs/deploy.md, "A uid-0 process that is not the image's".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Runs inside the container with the image's Python (psutil is one of noetl's dependencies).
# Processes that end while it reads them are skipped by process_iter.
PROBE = (
    "import json, os, psutil; "
    "rows = [p.info for p in psutil.process_iter(['pid', 'ppid', 'uids', 'gids', 'cmdline'])]; "
    "print(json.dumps({'self': os.getpid(), 'processes': rows}))"
)


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    uids: tuple[int, ...]  # real, effective, saved
    gids: tuple[int, ...]
    cmdline: str

    def describe(self) -> str:
        command = self.cmdline if len(self.cmdline) <= 80 else self.cmdline[:77] + "..."
        return f"pid {self.pid} (parent {self.ppid}) uids {list(self.uids)}: {command or '?'}"


@dataclass(frozen=True)
class Snapshot:
    probe: int  # the probe's own PID: itself entered by `docker exec`
    processes: tuple[Proc, ...]


def parse(output: str) -> Snapshot:
    """The PROBE's output -> a Snapshot."""
    data = json.loads(output)
    return Snapshot(
        probe=int(data["self"]),
        processes=tuple(
            Proc(
                pid=int(row["pid"]),
                ppid=int(row["ppid"]),
                uids=tuple(row["uids"]),
                gids=tuple(row["gids"]),
                cmdline=" ".join(row["cmdline"] or []),
            )
            for row in data["processes"]
        ),
    )


def split_at_pid1(processes: Iterable[Proc]) -> tuple[list[Proc], list[Proc]]:
    """(the image's processes, the processes entered from outside).

    Entered from outside: a process whose line of parents ends at a parent-0 process other than
    PID 1. Everything else counts as the image's, including a process whose parent ended while
    the probe read the table (it is re-parented to PID 1 by then).
    """
    table = list(processes)
    by_pid = {p.pid: p for p in table}

    def entered(proc: Proc) -> bool:
        seen = set()
        while proc.ppid != 0 and proc.ppid in by_pid and proc.pid not in seen:
            seen.add(proc.pid)
            proc = by_pid[proc.ppid]
        return proc.ppid == 0 and proc.pid != 1

    image = [p for p in table if not entered(p)]
    outside = [p for p in table if entered(p)]
    return image, outside


def not_running_as(uid: int, gid: int, processes: Sequence[Proc]) -> list[Proc]:
    """The processes with any real, effective or saved id other than ``uid``/``gid``."""
    return [p for p in processes if set(p.uids) != {uid} or set(p.gids) != {gid}]
