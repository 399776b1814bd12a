"""`noetl run` as a test (or benchmark) drives it: a real launcher, supervisord, server and workers.

``Stack`` starts `python -m noetl run` in a temporary NOETL_HOME with a free port, pointed at a real
PostgreSQL and NATS, captures its output to a file, and offers the few things tests need: wait for
every program RUNNING, run `noetl ctl`, HTTP calls to the API, and a stop by PID.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noetl.server.auth import is_worker_route
from noetl.tokens import API_TOKEN_FILE, WORKER_TOKEN_FILE, read_token
from tests.auth import TOKEN_ENV, bearer
from tests.open_python import open_python
from tests.services import free_port


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = self.home / "noetl-run.log"

    @property
    def run_dir(self) -> Path:
        return Path(self.full_env()["NOETL_RUN_DIR"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def full_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "NOETL_HOME": str(self.home),
            "NOETL_RUN_DIR": str(self.home / "run"),
            "NOETL_HOST": "127.0.0.1",
            "NOETL_PORT": str(self.port),
            "NOETL_SERVER_URL": f"http://127.0.0.1:{self.port}",
            **TOKEN_ENV,
            **self.env,
            **(extra or {}),
        }
        env.pop("NOETL_CONFIG", None)
        return env

    def start(
        self, *args: str, argv0: list[str] | None = None, user: int | None = None, own_group: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start `noetl run` (``argv0`` replaces `python -m noetl`; ``user`` runs it as that uid;
        ``own_group`` puts it in a process group of its own, as a shell does a foreground job)."""
        log = self.log_path.open("ab")
        # As root the server and workers run as NOETL_USER with this interpreter: one it can run.
        command = argv0 or [open_python(), "-m", "noetl"]
        as_user: dict[str, Any] = {}
        if user is not None:
            as_user = {
                "user": user,
                "group": pwd.getpwuid(user).pw_gid,
                "extra_groups": [],
                "cwd": str(self.home),
            }
        if own_group:
            as_user["process_group"] = 0
        self.proc = subprocess.Popen(
            [*command, "run", *args], env=self.full_env(), stdout=log, stderr=subprocess.STDOUT, **as_user
        )
        log.close()
        return self.proc

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "noetl", "ctl", *args],
            env=self.full_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def status(self) -> list[dict[str, Any]]:
        done = self.ctl("status", "--json")
        if done.returncode not in (0, 3):
            return []
        return list(json.loads(done.stdout))

    def wait_running(self, expected: set[str], timeout: float = 60) -> list[dict[str, Any]]:
        """Wait until exactly ``expected`` processes (plus the listener) are RUNNING."""
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"noetl run exited {self.proc.returncode}:\n{self.output()[-3000:]}")
            rows = self.status()
            running = {r["name"] for r in rows if r["state"] == "RUNNING"}
            if running == expected | {"listener"}:
                return rows
            time.sleep(0.2)
        raise AssertionError(f"not all RUNNING after {timeout}s: {rows}\n{self.output()[-3000:]}")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/api/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.HTTPError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout}s\n{self.output()[-3000:]}")

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **bearer(self.token_for(method, path))},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def token_for(self, method: str, path: str) -> str:
        """The token this stack's programs were given (or generated) for this route."""
        env = self.full_env()
        if is_worker_route(method, path.partition("?")[0]):
            return env.get("NOETL_WORKER_TOKEN") or read_token(self.home / WORKER_TOKEN_FILE) or ""
        return env.get("NOETL_API_TOKEN") or read_token(self.home / API_TOKEN_FILE) or ""

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM by PID and wait; SIGKILL if it does not end. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
