"""`noetl server|worker start|stop`: one role of `noetl run`, in the background, with a PID file.

The seed's process commands, built on the same mechanism as `noetl run` (not a second one): start
runs `noetl run` for that role detached, with its own run directory, and records the launcher's PID
in ``$NOETL_HOME/noetl_server.pid`` or ``noetl_worker_<name>.pid``; stop asks its supervisord to shut
down through the control socket (a graceful stop of every program), waits, and with ``force`` kills
the whole process tree.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from noetl.errors import AlreadyRunningError, ControlError, NoetlError, ProgramFailedError
from noetl.settings import Settings
from noetl.supervisor import files
from noetl.supervisor.paths import RunPaths
from noetl.supervisor.preflight import check_port
from noetl.supervisor.render import max_stop_seconds

if TYPE_CHECKING:
    import psutil

START_WAIT = 30.0  # seconds to see every program RUNNING before `start` gives up


@dataclass(frozen=True)
class Instance:
    """Where one background role keeps its PID file, run directory and log."""

    role: str  # server | worker
    name: str
    home: Path
    run_root: Path

    @property
    def label(self) -> str:
        return "server" if self.role == "server" else f"worker {self.name}"

    @property
    def pidfile(self) -> Path:
        if self.role == "server":
            return self.home / "noetl_server.pid"
        return self.home / f"noetl_worker_{self.name}.pid"

    @property
    def run_dir(self) -> Path:
        return self.run_root / ("server" if self.role == "server" else f"worker-{self.name}")

    @property
    def log(self) -> Path:
        return self.home / "logs" / (self.pidfile.stem + ".log")


def instance(settings: Settings, role: str, name: str = "default") -> Instance:
    return Instance(role=role, name=name, home=settings.home, run_root=settings.run_dir)


def running_pid(inst: Instance) -> int | None:
    """The launcher's PID from the PID file, if that process is alive and is a noetl launcher."""
    import psutil

    try:
        pid = int(files.read_text(inst.pidfile).strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return None
    return pid if "noetl" in cmdline and " run" in cmdline else None


def start(
    settings: Settings,
    inst: Instance,
    environ: Mapping[str, str],
    python: str = sys.executable,
) -> int:
    """Start the role in the background; return the launcher's PID once every program runs."""
    pid = running_pid(inst)
    if pid is not None:
        raise AlreadyRunningError(
            f"noetl {inst.label} is already running (pid {pid}, {inst.pidfile}); "
            f"stop it with `noetl {inst.role} stop`"
        )
    if inst.role == "server":
        check_port(settings)
    inst.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    files.check_private_dir(inst.home, "NOETL_HOME")
    inst.log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = {**environ, **settings.to_env(), "NOETL_ROLE": inst.role, "NOETL_RUN_DIR": str(inst.run_dir)}
    with os.fdopen(files.open_append(inst.log), "ab") as log:
        proc = subprocess.Popen(
            [python, "-m", "noetl", "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: it outlives this command and the terminal
        )
    files.write_text(inst.pidfile, f"{proc.pid}\n")
    try:
        _wait_running(inst, proc)
    except NoetlError:
        inst.pidfile.unlink(missing_ok=True)
        raise
    return proc.pid


def _wait_running(inst: Instance, proc: subprocess.Popen[bytes]) -> None:
    from noetl.supervisor.control import Control

    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise ProgramFailedError(
                f"noetl {inst.label} exited at start (status {code}): {_last_line(inst.log)}"
            )
        with contextlib.suppress(NoetlError):
            states = {info["statename"] for info in Control(RunPaths(inst.run_dir)).processes()}
            if states == {"RUNNING"}:
                return
        time.sleep(0.2)
    raise ProgramFailedError(
        f"noetl {inst.label} did not come up within {START_WAIT:g} s; see {inst.log} "
        f"or `noetl ctl --run-dir {inst.run_dir} status`"
    )


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in files.read_text(path).splitlines() if line.strip()]
    except (OSError, NoetlError):
        return f"see {path}"
    return lines[-1].removeprefix("noetl: ") if lines else f"see {path}"


def stop(settings: Settings, inst: Instance, force: bool = False) -> bool:
    """Stop the role gracefully; returns False when it was not running."""
    import psutil

    from noetl.supervisor.control import Control

    pid = running_pid(inst)
    if pid is None:
        inst.pidfile.unlink(missing_ok=True)
        return False
    proc = psutil.Process(pid)
    tree = [proc, *proc.children(recursive=True)]
    try:
        Control(RunPaths(inst.run_dir)).shutdown()
    except NoetlError:
        # No control socket (still starting, or supervisord is gone): the launcher passes SIGTERM on.
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    budget = max_stop_seconds(settings) + 2.0
    _, alive = psutil.wait_procs(tree, timeout=budget)
    if alive:
        if not force:
            raise ControlError(
                f"noetl {inst.label} did not stop within {budget:g} s; "
                f"`noetl {inst.role} stop --force` kills it"
            )
        for leftover in [*alive, *_descendants(alive)]:
            with contextlib.suppress(psutil.Error):
                leftover.kill()
        psutil.wait_procs(alive, timeout=5)
    inst.pidfile.unlink(missing_ok=True)
    return True


def stop_and_say(settings: Settings, inst: Instance, force: bool = False) -> str:
    """``stop``, then the line that says what happened."""
    if stop(settings, inst, force=force):
        return f"noetl {inst.label} stopped"
    return f"noetl {inst.label} is not running"


def _descendants(procs: list[psutil.Process]) -> list[psutil.Process]:
    import psutil

    found = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            found.extend(proc.children(recursive=True))
    return found
