"""Crashes, not stops: SIGKILL a process (and what it started) by PID, then start it again.

A crashed PostgreSQL comes back on the same data directory through crash recovery (its log says
so: ``was_recovered``); a crashed NATS comes back on the same JetStream store.
"""

from __future__ import annotations

import contextlib
import subprocess

import psutil

from tests.services import Nats, Postgres

# PostgreSQL's log lines when it starts on the files of a server that did not shut down.
RECOVERY_LINES = ("database system was interrupted", "automatic recovery in progress")


def sigkill_tree(pid: int, timeout: float = 10) -> None:
    """SIGKILL ``pid`` and every process below it at once, and wait until they are gone."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [root]
    with contextlib.suppress(psutil.Error):
        procs += root.children(recursive=True)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    assert not alive, f"still alive after SIGKILL: {alive}"


def crash(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process the test started (and everything below it) and reap it."""
    sigkill_tree(proc.pid)
    proc.wait(5)


def crash_postgres(pg: Postgres) -> None:
    """SIGKILL the postmaster and every backend together, as a machine crash would stop them."""
    assert pg.proc is not None, "PostgreSQL is not running"
    crash(pg.proc)
    pg.proc = None


def recoveries(pg: Postgres) -> int:
    """How many times PostgreSQL started by crash recovery on this data directory."""
    return pg.log_path.read_text(errors="replace").count(RECOVERY_LINES[1])


def crash_nats(nats: Nats) -> None:
    assert nats.proc is not None, "NATS is not running"
    crash(nats.proc)
    nats.proc = None
