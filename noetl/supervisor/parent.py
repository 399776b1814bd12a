"""The launcher as supervisord's parent: signals, reaping and the exit status.

The launcher stays in the foreground as supervisord's parent (PID 1 in a container) because
supervisord alone gets two things wrong there: it always exits 0, even when it stopped because a
program could not stay up, and it does not reap orphans that are not its own children. So:

- signal handlers only record the signal (through a wakeup pipe); the loop acts: the first
  SIGTERM/SIGINT is passed on to supervisord, which stops every program in parallel within its
  stop timeout; a second one kills the whole tree at once. SIGHUP is passed on (reload);
- the loop reaps every child that ends, supervisord's and any orphan re-parented to it as PID 1,
  and kills this run's orphans (a SIGKILLed worker's tool processes) instead of letting them run on;
- the exit status is 0 after a clean stop, or 1 with the line the event listener wrote when a
  program could not stay up.

supervisord itself is started before its config is written (``Supervisord.start``, see early.py),
so that its imports run while the launcher checks and writes; ``supervise`` hands it the config.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
from collections.abc import Mapping

from noetl.errors import ProgramFailedError
from noetl.procs import become_subreaper, terminated_with_parent
from noetl.supervisor.paths import RunPaths
from noetl.supervisor.rundir import read_failure

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FORWARDED = (signal.SIGHUP,)


class SignalPipe:
    """Handlers record signal numbers into a pipe; the loop reads them when it is ready."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.previous = {sig: signal.signal(sig, self._record) for sig in signals}
        self.previous_wakeup = signal.set_wakeup_fd(self.write_fd)

    @staticmethod
    def _record(signum: int, frame: object) -> None:
        # The wakeup fd already carries the number; nothing else to do in a handler.
        return None

    def wait(self, timeout: float) -> list[int]:
        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        if not ready:
            return []
        try:
            return list(os.read(self.read_fd, 512))
        except BlockingIOError:
            return []

    def close(self) -> None:
        signal.set_wakeup_fd(self.previous_wakeup)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        os.close(self.read_fd)
        os.close(self.write_fd)


def reap(pid: int) -> int | None:
    """Reap every ended child; return ``pid``'s exit status once it has ended."""
    status = None
    while True:
        try:
            ended, raw = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status if status is not None else 0
        if ended == 0:
            return status
        if ended == pid:
            status = os.waitstatus_to_exitcode(raw)


def kill_tree() -> None:
    """SIGKILL every descendant of this process (the forced stop, and what is left at the end)."""
    # Orphans come back to this subreaper: no child left means no descendant left, and a clean
    # stop's last step does not import psutil (~30 ms of CPU, on the path of every stop).
    if not child_pids():
        return
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(children, timeout=5)


def child_pids() -> list[int]:
    """This process's children. Linux lists them per thread in /proc (a few small reads); psutil
    finds them by reading the status of every process on the machine (~5 ms with 250 of them)."""
    try:
        pids: list[int] = []
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children", encoding="ascii") as fh:
                pids.extend(int(pid) for pid in fh.read().split())
        return pids
    except OSError:  # not Linux, or a kernel without CONFIG_PROC_CHILDREN
        import psutil

        return [child.pid for child in psutil.Process().children()]


def kill_orphans(supervisord: int, socket_url: str) -> None:
    """SIGKILL the process groups of this run's orphans: processes re-parented to the launcher.

    A worker killed mid-command (the OOM killer, a SIGKILL) leaves its tool's children behind;
    they must not run on beside the command's next attempt. An orphan is this run's when it
    carries the run's ``SUPERVISOR_SERVER_URL`` (supervisord sets it in every program, and tools
    inherit it); others that reach PID 1 in a container (a `docker exec` job) are left alone.
    """
    orphans = [pid for pid in child_pids() if pid != supervisord]
    if not orphans:  # the usual case, once a second: no psutil scan of every process on the machine
        return
    import psutil

    for pid in orphans:
        with contextlib.suppress(psutil.Error, OSError):
            child = psutil.Process(pid)
            if child.environ().get("SUPERVISOR_SERVER_URL") != socket_url:
                continue
            pgid = os.getpgid(child.pid)
            if pgid != os.getpgrp():
                os.killpg(pgid, signal.SIGKILL)
            else:
                child.kill()


class Supervisord:
    """supervisord as the launcher's child: started early, then given its config and supervised."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.handed = False

    @classmethod
    def start(cls, python: str, environ: Mapping[str, str], paths: RunPaths) -> Supervisord:
        """Start it now, importing; it waits for ``supervise`` (or ``cancel``) on its stdin."""
        proc = subprocess.Popen(
            # supervisord with a loop that acts on signals and child exits at once (see prompt.py).
            [python, "-m", "noetl.supervisor.early", "-c", str(paths.config)],
            # Read at the interpreter's start: the programs' environment, given later, comes too late.
            env={**environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            preexec_fn=terminated_with_parent,
        )
        return cls(proc)

    def cancel(self) -> None:
        """End it if it never got its config (the launcher stopped before: it says why)."""
        if not self.handed:
            self.handed = True
            self.proc.kill()
            self.proc.wait()
            if self.proc.stdin is not None:
                self.proc.stdin.close()

    def _hand_over(self, env: Mapping[str, str]) -> None:
        message = json.dumps({"env": dict(env)}).encode()
        self.handed = True
        assert self.proc.stdin is not None
        # Ended already (its imports failed): the loop reaps it and reports its exit status.
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(message)
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()

    def supervise(self, paths: RunPaths, env: Mapping[str, str]) -> int:
        """Let supervisord start on the config written to ``paths`` (the one it was started with) and
        stay its parent until it exits; 0 or raises."""
        # Orphans of this run come back to the launcher (as they would to PID 1), to be reaped and,
        # at the end, killed: nothing of the run outlives it.
        become_subreaper()
        signals = SignalPipe((*STOP_SIGNALS, *FORWARDED, signal.SIGCHLD))
        proc = self.proc
        try:
            self._hand_over(env)
            stops = 0
            status = None
            while status is None:
                for sig in signals.wait(1.0):
                    if sig in STOP_SIGNALS:
                        stops += 1
                        if stops == 1:
                            proc.send_signal(signal.SIGTERM)
                        elif stops == 2:
                            kill_tree()
                    elif sig in FORWARDED:
                        proc.send_signal(sig)
                status = reap(proc.pid)
                kill_orphans(proc.pid, f"unix://{paths.socket}")
            proc.returncode = status  # reaped by us, not by Popen
        finally:
            signals.close()
        kill_tree()
        if stops >= 2:
            raise ProgramFailedError("stopped by force (second signal): programs were killed")
        failure = read_failure(paths)
        if failure:
            raise ProgramFailedError(failure)
        if status != 0:
            raise ProgramFailedError(f"supervisord exited with status {status}; see the lines above")
        return 0
