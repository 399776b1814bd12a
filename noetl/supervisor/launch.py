"""`noetl run`: the only place that spawns supervisord, and its parent for as long as it runs.

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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

from noetl.errors import AlreadyRunningError, ConfigError, ProgramFailedError
from noetl.logs import json_line
from noetl.settings import Settings
from noetl.supervisor import embedded
from noetl.supervisor.paths import RunPaths
from noetl.supervisor.render import ControlAuth, render

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FORWARDED = (signal.SIGHUP,)


def prepare_run_dir(paths: RunPaths) -> None:
    """Create the run directory for its owner only (it holds the control socket)."""
    try:
        paths.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(paths.run_dir, 0o700)
        paths.log_dir.mkdir(exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"NOETL_RUN_DIR={str(paths.run_dir)!r}: cannot create it ({exc.strerror}); "
            "point NOETL_RUN_DIR or NOETL_HOME at a writable directory"
        ) from None


@contextlib.contextmanager
def run_lock(paths: RunPaths) -> Iterator[None]:
    """Hold the run directory's lock: a second launcher on it refuses instead of fighting."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AlreadyRunningError(
                f"noetl is already running with run dir {paths.run_dir} (launcher pid {holder}); "
                "stop it with `noetl ctl shutdown` or set NOETL_RUN_DIR to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def clear_stale(paths: RunPaths) -> None:
    """Remove what a killed run left behind, unless a supervisord still answers on the socket."""
    if paths.socket.exists():
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(paths.socket))
            except OSError:
                pass
            else:
                raise AlreadyRunningError(
                    f"a supervisord left by an earlier run still answers on {paths.socket}; "
                    "stop it with `noetl ctl shutdown`, then start again"
                )
    for stale in (paths.socket, paths.pidfile, paths.failure):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def check_port(settings: Settings) -> None:
    """Refuse at once when the server could never bind, instead of letting it crash-loop."""
    if settings.role not in ("all", "server"):
        return
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise AlreadyRunningError(
                    f"port {settings.port} on {settings.host} is already in use; "
                    "stop what listens there or set NOETL_PORT to a free port"
                ) from None
            raise ConfigError(
                f"NOETL_HOST={settings.host!r} NOETL_PORT={settings.port}: cannot listen there "
                f"({exc.strerror}); use an address of this machine such as 0.0.0.0"
            ) from None


def check_database(settings: Settings) -> None:
    if settings.role in ("all", "server") and not settings.postgres_host:
        raise ConfigError(
            "POSTGRES_HOST is not set and NOETL_EMBEDDED=never: set POSTGRES_HOST "
            "(and POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER, POSTGRES_PASSWORD) or allow the embedded one"
        )


def check_free(port: int, what: str, setting: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise AlreadyRunningError(
                f"port {port} for the {what} is already in use; set {setting} to a free port"
            ) from None


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    """Linux prctl(2); a no-op where it does not exist."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _die_with_parent() -> None:
    """In supervisord's child: get SIGTERM if the launcher dies, so nothing is orphaned."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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
    """SIGKILL every descendant of this process (the forced stop)."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(children, timeout=5)


def kill_orphans(supervisord: int, socket_url: str) -> None:
    """SIGKILL the process groups of this run's orphans: processes re-parented to the launcher.

    A worker killed mid-command (the OOM killer, a SIGKILL) leaves its tool's children behind;
    they must not run on beside the command's next attempt. An orphan is this run's when it
    carries the run's ``SUPERVISOR_SERVER_URL`` (supervisord sets it in every program, and tools
    inherit it); others that reach PID 1 in a container (a `docker exec` job) are left alone.
    """
    import psutil

    for child in psutil.Process().children():
        if child.pid == supervisord:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if child.environ().get("SUPERVISOR_SERVER_URL") != socket_url:
                continue
            pgid = os.getpgid(child.pid)
            if pgid != os.getpgrp():
                os.killpg(pgid, signal.SIGKILL)
            else:
                child.kill()


def announce(settings: Settings, out: TextIO, what: embedded.Plan) -> None:
    parts = []
    if settings.role in ("all", "server"):
        host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        parts.append(f"API on http://{host}:{settings.port}")
    if settings.role in ("all", "worker"):
        parts.append(f"{settings.workers} worker(s) x {settings.worker_concurrency}")
    if what.postgres:
        parts.append(f"embedded PostgreSQL on 127.0.0.1:{settings.postgres_port}")
    if what.nats:
        parts.append(f"embedded NATS on {settings.nats_url}")
    line = (
        f"noetl | starting role={settings.role}: {', '.join(parts)}; "
        f"`noetl ctl status` (run dir {settings.run_dir})"
    )
    if settings.log_format == "json":
        line = json_line({"level": "info", "process": "noetl", "message": line.removeprefix("noetl | ")})
    print(line, file=out, flush=True)


def run(
    settings: Settings,
    environ: Mapping[str, str],
    python: str = sys.executable,
    out: TextIO = sys.stdout,
) -> int:
    """Validate, render, start supervisord and stay its parent until it exits. Returns 0 or raises."""
    paths = RunPaths(settings.run_dir)
    run_as_root = os.geteuid() == 0
    what = embedded.plan(settings)
    settings = embedded.effective(settings, what)
    check_database(settings)
    bins = embedded.find_binaries(what, settings)
    prepare_run_dir(paths)
    with run_lock(paths):
        clear_stale(paths)
        check_port(settings)
        if what.postgres:
            check_free(settings.embedded_postgres_port, "embedded PostgreSQL", "NOETL_EMBEDDED_POSTGRES_PORT")
        if what.nats:
            check_free(settings.embedded_nats_port, "embedded NATS", "NOETL_EMBEDDED_NATS_PORT")
        embedded.prepare(settings, what, bins, run_as_root)
        services = embedded.programs(settings, what, bins, run_as_root)
        text = render(settings, ControlAuth.new(), python, run_as_root=run_as_root, services=services)
        write_private(paths.config, text)
        env = {**environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
        announce(settings, out, what)
        return supervise(paths, env, python)


def supervise(paths: RunPaths, env: Mapping[str, str], python: str) -> int:
    # Orphans of this run come back to the launcher (as they would to PID 1), to be reaped and,
    # at the end, killed: nothing of the run outlives it.
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    signals = SignalPipe((*STOP_SIGNALS, *FORWARDED, signal.SIGCHLD))
    try:
        proc = subprocess.Popen(
            [python, "-m", "supervisor.supervisord", "-c", str(paths.config)],
            env=dict(env),
            preexec_fn=_die_with_parent,
        )
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
    failure = _read_failure(paths)
    if failure:
        raise ProgramFailedError(failure)
    if status != 0:
        raise ProgramFailedError(f"supervisord exited with status {status}; see the lines above")
    return 0


def _read_failure(paths: RunPaths) -> str | None:
    try:
        return paths.failure.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
