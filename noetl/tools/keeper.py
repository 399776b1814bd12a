"""The keeper: a tiny process that SIGKILLs a worker's tool process groups when the worker dies.

Tools start in their own session, so nothing the kernel does on the worker's death reaches them.
``PR_SET_PDEATHSIG`` would, but it has to be set in the child between fork and exec, and that
hook (a ``preexec_fn``) forces a full ``fork()`` of the worker instead of ``vfork()``: 4 ms of
wall time and ~5 ms of CPU per command against under 1 ms. So the worker starts one keeper
instead, in a session of its own (a kill of the worker's group does not reach it), and tells it
through a pipe which groups are alive: ``+PGID`` when a tool starts, ``-PGID`` once its group is
gone. When the worker dies, however it dies, the kernel closes the pipe; the keeper reads EOF
and kills every group still listed, then exits. A worker that stops cleanly closes the pipe
with nothing listed.

One window stays open: a worker SIGKILLed between a tool's fork and the ``+PGID`` write (while
asyncio connects the tool's pipes, well under a millisecond) leaves that tool to the launcher,
which kills orphans of its run by their ``SUPERVISOR_SERVER_URL`` (``noetl.supervisor.parent``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys

log = logging.getLogger("noetl.worker")

# Runs with `python -I -S -c`: no site, no imports beyond os and signal, ~8 ms to start, ~7 MiB.
KEEPER_SOURCE = """
import os, signal
groups, rest = set(), b""
while True:
    try:
        chunk = os.read(0, 65536)
    except InterruptedError:
        continue
    if not chunk:
        break
    *lines, rest = (rest + chunk).split(b"\\n")
    for line in lines:
        if line[:1] == b"+":
            groups.add(int(line[1:]))
        elif line[:1] == b"-":
            groups.discard(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class Keeper:
    """The worker's side of the keeper: ``start``, ``watch``/``forget`` each group, ``close``."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None

    @property
    def active(self) -> bool:
        return self._fd is not None

    def start(self) -> None:
        """Start the keeper process (once)."""
        if self._proc is not None:
            return
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", KEEPER_SOURCE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
        )
        assert self._proc.stdin is not None
        self._fd = self._proc.stdin.fileno()

    def _send(self, line: bytes) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, line)  # a few bytes into a pipe: never blocks in practice
        except OSError as exc:
            # The keeper is gone (killed by hand): tools lose their guard, the worker goes on.
            log.warning("tool keeper gone (%s): tools may outlive a killed worker", exc)
            self._fd = None

    def watch(self, pgid: int) -> None:
        """Kill group ``pgid`` if this process dies before ``forget``."""
        self._send(b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        """Group ``pgid`` is gone: nothing to kill any more."""
        self._send(b"-%d\n" % pgid)

    def close(self, timeout: float = 2.0) -> None:
        """Close the pipe (the keeper kills what is still listed and exits) and reap it."""
        proc, self._proc, self._fd = self._proc, None, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# The keeper of this process, once the worker started one (``install``); tools spawned while none
# is installed fall back to PR_SET_PDEATHSIG in the child (slower, same guarantee for the child).
_current: Keeper | None = None


def install(keeper: Keeper | None) -> None:
    global _current
    _current = keeper


def current() -> Keeper | None:
    """The installed, working keeper, or None."""
    return _current if _current is not None and _current.active else None
