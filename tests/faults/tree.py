"""Every process a `noetl run` ever had, to prove that none outlives it.

``TreeWatch`` samples the launcher's descendants (supervisord, the listener, server, workers and
the tools' children) every few milliseconds in a thread, keeping each one's PID and start time, so
a process is recognised even after its parent died and it was re-parented. ``survivors()`` names
those still alive (the same PID with the same start time).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

import psutil

SAMPLE_EVERY = 0.05


@dataclass(frozen=True)
class Seen:
    pid: int
    started: float
    name: str

    def alive(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            return proc.create_time() == self.started and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


def descendants(pid: int) -> dict[int, Seen]:
    """``pid`` and everything below it now, by PID."""
    found: dict[int, Seen] = {}
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                found[proc.pid] = Seen(proc.pid, proc.create_time(), " ".join(proc.cmdline()[:4]))
    return found


class TreeWatch:
    """Samples the tree below ``root_pid`` until ``stop()``; use as a context manager."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.seen: dict[tuple[int, float], Seen] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-watch", daemon=True)

    def __enter__(self) -> TreeWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def sample(self) -> None:
        for seen in descendants(self.root_pid).values():
            self.seen.setdefault((seen.pid, seen.started), seen)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def survivors(self, wait: float = 5.0) -> list[Seen]:
        """What is still alive after waiting up to ``wait`` seconds for it to go."""
        procs = []
        for seen in self.seen.values():
            if seen.alive():
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(seen.pid))
        _, alive = psutil.wait_procs(procs, timeout=wait)
        alive_pids = {p.pid for p in alive}
        return [s for s in self.seen.values() if s.pid in alive_pids and s.alive()]


def commands_below(pid: int, needle: str) -> list[psutil.Process]:
    """The processes below ``pid`` whose command line contains ``needle`` (a tool's children)."""
    found = []
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if needle in " ".join(proc.cmdline()):
                    found.append(proc)
    return found
