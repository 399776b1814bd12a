"""supervisord as `noetl run` starts it: the same daemon, with a main loop that acts at once.

supervisord 4.x's main loop (``Supervisor.runforever``) waits in ``poll()`` for up to one second
and only then looks at signals, ended children and its deadlines. Python retries a poll that a
signal interrupts (PEP 475), so a SIGTERM, a child's exit or a program's ``startsecs`` running out
all wait for the end of that second: the first programs were spawned 1 s after supervisord started,
and a stop cost about a second for each group stopped in turn, plus one for supervisord's own exit.

``PromptSupervisor`` runs that same loop with one thing changed, how long ``poll()`` waits:
- a signal wakes it: the C signal handler writes to a wakeup fd (``signal.set_wakeup_fd``) that is
  polled with supervisord's own fds, and the signal is handled in the same pass;
- it does not wait at all while there is something to do now (a process changed state since the
  last poll: a spawn to mark RUNNING, a stopped group to move on from; a signal not yet handled);
- otherwise it waits until the next deadline of a process (``startsecs`` elapsed, a backoff's
  retry, a stop's SIGKILL) and never longer than supervisord's own second.
Every decision (what to start, stop or kill, and when) is still supervisord's.

Run as ``python -m noetl.supervisor.prompt -c CONFIG`` (supervisord's own arguments); `noetl run`
starts it through ``early.py``, which calls ``main`` once the config is written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from supervisor import supervisord
from supervisor.medusa import asyncore_25 as asyncore
from supervisor.options import ServerOptions
from supervisor.states import ProcessStates, SupervisorStates

# A deadline is passed when ``now - start > startsecs``: poll until just after it.
PAST_DEADLINE = 0.005
_DEADLINE_STATES = (ProcessStates.BACKOFF, ProcessStates.STOPPING)


def next_wait(supervisor: Any, now: float, last: object) -> tuple[float, object]:
    """Seconds poll may wait now, and the snapshot of states to compare with next time.

    ``supervisor`` is a ``supervisord.Supervisor``; ``last`` the snapshot the previous call returned.
    """
    processes = [proc for group in supervisor.process_groups.values() for proc in group.processes.values()]
    snapshot = (
        supervisor.options.mood,
        tuple((id(proc), proc.state, getattr(proc, "listener_state", None)) for proc in processes),
    )
    # supervisord handles one received signal a pass: more waiting means more passes to make now.
    if snapshot != last or supervisor.options.signal_receiver._signals_recvd:
        return 0.0, snapshot
    deadlines = []
    for proc in processes:
        if proc.state == ProcessStates.STARTING:
            deadlines.append(proc.laststart + proc.config.startsecs)
        elif proc.state in _DEADLINE_STATES:
            deadlines.append(proc.delay)
    if not deadlines:
        return float("inf"), snapshot
    return max(0.0, min(deadlines) - now) + PAST_DEADLINE, snapshot


class PromptPoller:
    """supervisord's poller, waiting as ``next_wait`` says and woken by the wakeup fd."""

    def __init__(self, inner: Any, supervisor: Any, wake_fd: int) -> None:
        self.inner = inner
        self.supervisor = supervisor
        self.wake_fd = wake_fd
        self.last: object = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def poll(self, timeout: float) -> tuple[list[int], list[int]]:
        wait, self.last = next_wait(self.supervisor, time.time(), self.last)
        self.inner.register_readable(self.wake_fd)
        readable, writable = self.inner.poll(min(timeout, wait))
        if self.wake_fd in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.wake_fd, 512):
                    pass
            readable = [fd for fd in readable if fd != self.wake_fd]
        return readable, writable


class PromptSupervisor(supervisord.Supervisor):
    def runforever(self) -> None:
        # Made for each run of the loop: a reload (SIGHUP) closes the fds it inherited.
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        poller = self.options.poller
        self.options.poller = PromptPoller(poller, self, read_fd)
        try:
            super().runforever()
        finally:
            self.options.poller = poller
            signal.set_wakeup_fd(previous)
            with contextlib.suppress(KeyError, OSError):
                poller.unregister_readable(read_fd)
            os.close(read_fd)
            os.close(write_fd)


def main(argv: Sequence[str] | None = None) -> None:
    """supervisord's own ``main``, with ``PromptSupervisor`` in place of ``Supervisor``."""
    args = list(sys.argv[1:] if argv is None else argv)
    first = True
    while True:
        options = ServerOptions()
        options.realize(args, doc=supervisord.__doc__)
        options.first = first
        options.test = False
        with contextlib.suppress(asyncore.ExitNow):
            PromptSupervisor(options).main()
        options.close_httpservers()
        options.close_logger()
        first = False
        if options.mood < SupervisorStates.RESTARTING:
            break


if __name__ == "__main__":
    main()
