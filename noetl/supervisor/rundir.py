"""The run directory: created private, held by one launcher, cleared of a killed run's leftovers."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from noetl.errors import AlreadyRunningError, ConfigError
from noetl.supervisor import files
from noetl.supervisor.paths import RunPaths


def prepare_run_dir(paths: RunPaths) -> None:
    """Create the run directory for its owner only (it holds the control socket)."""
    files.check_private_dir(paths.run_dir, "NOETL_RUN_DIR")
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
    fd = files.open_lock(paths.lock)
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


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), atomically: a reader sees all of it or none."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_failure(paths: RunPaths) -> str | None:
    """The line the event listener wrote when a program could not stay up, if it wrote one."""
    try:
        return files.read_text(paths.failure).strip() or None
    except FileNotFoundError:
        return None
