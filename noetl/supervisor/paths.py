"""Where a run keeps its files: everything lives in one run directory (mode 0700)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunPaths:
    run_dir: Path

    @property
    def config(self) -> Path:
        """The rendered supervisord configuration (mode 0600: it holds the control credentials)."""
        return self.run_dir / "supervisord.conf"

    @property
    def socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "supervisord.pid"

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def listener_log(self) -> Path:
        return self.log_dir / "listener.log"

    @property
    def failure(self) -> Path:
        """Written by the event listener when a program cannot stay up; read by the launcher."""
        return self.run_dir / "failure"

    @property
    def lock(self) -> Path:
        """Held (flock) by the launcher for as long as it runs; holds its PID."""
        return self.run_dir / "noetl.lock"
