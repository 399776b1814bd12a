"""A real server and real worker processes for the worker's integration tests.

``Cluster`` starts `python -m noetl.server` and any number of `python -m noetl.worker` processes
on a real PostgreSQL database and NATS server, each with its output in a file, and stops them by
PID. Helpers submit commands and read the event log through the API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from noetl.protocol.words import EXECUTION_FINISHED
from tests.auth import TOKEN_ENV, RouteAuth
from tests.services import free_port, stop_pid, wait_until

ROOT = Path(__file__).resolve().parents[2]
FINISHED = EXECUTION_FINISHED


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any noetl setting, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOETL_", "POSTGRES_", "SUPERVISOR_")) and k != "NATS_URL"
    }
    env.update(TOKEN_ENV)
    env.update(extra)
    return env


class Api:
    """Calls on a server at ``url``: submit commands, read executions and their events, wait."""

    def __init__(self, url: str) -> None:
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    def auth(self) -> httpx.Auth:
        return RouteAuth()

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        response = httpx.request(method, self.url + path, json=body, timeout=15, auth=self.auth())
        return response.status_code, response.json() if response.content else None

    def submit(self, tool: Mapping[str, Any], timeout: float = 60, max_attempts: int = 3) -> tuple[str, str]:
        status, body = self.api(
            "POST", "/api/executions", {"tool": dict(tool), "timeout": timeout, "max_attempts": max_attempts}
        )
        assert status == 201, body
        return body["execution_id"], body["command_id"]

    def execution(self, execution_id: str) -> dict[str, Any]:
        status, body = self.api("GET", f"/api/executions/{execution_id}")
        assert status == 200, body
        return dict(body)

    def wait_count(self, status: str, count: int, timeout: float) -> None:
        """Wait until ``count`` executions have ``status`` (one cheap query, however many there are)."""

        def reached() -> bool:
            return int(self.api("GET", f"/api/executions?status={status}&limit=1")[1]["total"]) >= count

        wait_until(reached, timeout, f"{count} executions {status}", interval=0.2)

    def wait_finished(self, execution_ids: Iterable[str], timeout: float) -> dict[str, dict[str, Any]]:
        """Every execution once it is finished; fails with the unfinished ones after ``timeout``."""
        waiting = list(execution_ids)
        done: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            for eid in list(waiting):
                view = self.execution(eid)
                if view["status"] in FINISHED:
                    done[eid] = view
                    waiting.remove(eid)
            if waiting:
                time.sleep(0.2)
        assert not waiting, f"{len(waiting)} not finished after {timeout}s: {self.execution(waiting[0])}"
        return done

    def wait_status(self, execution_id: str, status: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.execution(execution_id)
            if view["status"] == status:
                return view
            time.sleep(0.1)
        raise AssertionError(f"{execution_id} not {status} after {timeout}s: {self.execution(execution_id)}")

    def wait_command_status(self, execution_id: str, status: str, timeout: float) -> dict[str, Any]:
        """Wait until the execution's (one) command has ``status``; the execution."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = self.execution(execution_id)
            if view["commands"][0]["status"] == status:
                return view
            time.sleep(0.1)
        raise AssertionError(
            f"{execution_id}'s command not {status} after {timeout}s: {self.execution(execution_id)}"
        )


@dataclass
class Cluster(Api):
    tmp: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    server: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def full_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {
            **self.env,
            "NOETL_HOST": "127.0.0.1",
            "NOETL_PORT": str(self.port),
            "NOETL_SERVER_URL": self.url,
            **(extra or {}),
        }

    def auth(self) -> httpx.Auth:
        return RouteAuth.of(self.env)

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def output(self, name: str) -> str:
        path = self.log(name)
        return path.read_text(errors="replace") if path.exists() else ""

    # --- processes -------------------------------------------------------------------------------

    def start_server(self, wait: bool = True) -> None:
        with self.log("server").open("ab") as out:
            self.server = subprocess.Popen(
                [sys.executable, "-m", "noetl.server", "--init-db"],
                env=self.full_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        if wait:
            wait_until(self._ready, 60, "server /api/ready")

    def _ready(self) -> bool:
        if self.server is not None and self.server.poll() is not None:
            raise RuntimeError(f"server exited {self.server.returncode}:\n{self.output('server')[-3000:]}")
        try:
            return httpx.get(self.url + "/api/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop_server(self) -> None:
        if self.server is not None:
            stop_pid(self.server, signal.SIGTERM)
            self.server = None

    def start_worker(self, name: str, **extra: str) -> subprocess.Popen[bytes]:
        env = self.full_env({"SUPERVISOR_PROCESS_NAME": name, **extra})
        with self.log(name).open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "noetl.worker"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.workers[name] = proc
        return proc

    def wait_worker_ready(self, name: str, timeout: float = 30) -> None:
        proc = self.workers[name]

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited {proc.returncode}:\n{self.output(name)[-3000:]}")
            return f"worker {self.worker_id(name)} ready" in self.output(name)

        wait_until(ready, timeout, f"{name} ready")

    def worker_id(self, name: str) -> str:
        import socket

        return f"{socket.gethostname()}:{name}:{self.workers[name].pid}"

    def stop_all(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGTERM)  # a second one: release and leave now
        for proc in self.workers.values():
            stop_pid(proc, signal.SIGKILL, timeout=10)
        self.stop_server()


def event_types(view: Mapping[str, Any]) -> list[str]:
    return [e["type"] for e in view["events"]]


def worker_events(view: Mapping[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in view["events"] if e["type"] == kind]


def assert_completed_once(view: Mapping[str, Any]) -> None:
    """The execution completed, with exactly one completed event and no failed one."""
    counts = Counter(event_types(view))
    assert view["status"] == "COMPLETED", view
    assert counts["completed"] == 1, view
    assert counts["failed"] == 0, view
