"""A real `python -m noetl.server` on a free port, against the real PostgreSQL and NATS fixtures.

The server runs as a subprocess (uvicorn, lifespan and all) and is stopped by its PID. Helpers
read the JetStream stream directly, so tests see exactly what workers would receive.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.auth import TOKEN_ENV, RouteAuth
from tests.services import Nats, free_port, stop_pid, wait_until

ROOT = Path(__file__).resolve().parents[2]
STREAM = "NOETL_COMMANDS"


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any noetl setting, plus the test tokens and ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "POSTGRES_")) and k != "NATS_URL"
    }
    env.update(TOKEN_ENV)
    env.update(extra)
    return env


@dataclass
class Server:
    """One server process; ``url`` is its base URL, ``log`` its combined output."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> None:
        env = {**self.env, "NOETL_HOST": "127.0.0.1", "NOETL_PORT": str(self.port)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "noetl.server"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        probe = "/api/ready" if wait_ready else "/api/health"
        wait_until(lambda: self._answers(probe), 30, f"server {probe}")

    def _answers(self, path: str) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            return httpx.get(self.url + path, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait for /api/ready to answer 200; on timeout, fail with the server's log."""
        try:
            wait_for(
                lambda: httpx.get(self.url + "/api/ready", timeout=2).status_code == 200, timeout, "ready"
            )
        except AssertionError:
            raise AssertionError(
                f"server not ready after {timeout}s; its log:\n{self.log.read_text()}"
            ) from None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        stop_pid(self.proc, signal.SIGTERM)
        code, self.proc = self.proc.returncode, None
        return code

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client that sends the test tokens (the worker's on worker routes); ``auth=None`` for none."""
        kwargs.setdefault("auth", RouteAuth())
        return httpx.Client(base_url=self.url, timeout=15, **kwargs)


@pytest.fixture
def server_env(pg_env: dict[str, str], nats: Nats) -> dict[str, str]:
    return clean_env(
        **pg_env,
        NATS_URL=nats.url,
        NOETL_REAPER_INTERVAL="0.2",
        NOETL_STOP_TIMEOUT="5",
        NOETL_LOG_LEVEL="info",
    )


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Build servers with a given environment; all are stopped at teardown."""
    started: list[Server] = []

    def make(env: dict[str, str], wait_ready: bool = True) -> Server:
        server = Server(env=env, log=tmp_path / f"server-{len(started)}.log")
        started.append(server)
        server.start(wait_ready=wait_ready)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server], server_env: dict[str, str]) -> Server:
    return make_server(server_env)


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


# --- helpers -----------------------------------------------------------------------------------


def submit(api: httpx.Client, tool: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    body = {"tool": tool or {"kind": "shell", "command": "echo hi"}, **fields}
    response = api.post("/api/executions", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def command_of(api: httpx.Client, execution_id: str) -> dict[str, Any]:
    response = api.get(f"/api/executions/{execution_id}")
    assert response.status_code == 200, response.text
    command: dict[str, Any] = response.json()["commands"][0]
    return command


def execution(api: httpx.Client, execution_id: str) -> dict[str, Any]:
    response = api.get(f"/api/executions/{execution_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def wait_for(predicate: Callable[[], Any], timeout: float = 15, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; return that (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout}s")
        time.sleep(0.05)


def stream_notices(nats_url: str, stream: str = STREAM) -> list[tuple[str, dict[str, Any]]]:
    """Every message now in the stream, as (Nats-Msg-Id, decoded body), oldest first."""

    async def read() -> list[tuple[str, dict[str, Any]]]:
        import nats
        import nats.js.errors

        nc = await nats.connect(nats_url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            js = nc.jetstream(timeout=2)
            try:
                info = await js.stream_info(stream)
            except nats.js.errors.NotFoundError:
                return []
            found: list[tuple[str, dict[str, Any]]] = []
            if not info.state.messages:
                return found
            for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(stream, seq)
                except nats.js.errors.NotFoundError:
                    continue
                found.append(((msg.headers or {}).get("Nats-Msg-Id", ""), json.loads(msg.data or b"{}")))
            return found
        finally:
            await nc.close()

    return asyncio.run(read())


def pg_fetch(pg_env: dict[str, str], query: str, *args: Any) -> list[dict[str, Any]]:
    """Run one query on the test database (to check what the API does not show)."""

    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(
            host=pg_env["POSTGRES_HOST"],
            port=int(pg_env["POSTGRES_PORT"]),
            user=pg_env["POSTGRES_USER"],
            database=pg_env["POSTGRES_DB"],
        )
        try:
            return [dict(r) for r in await conn.fetch(query, *args)]
        finally:
            await conn.close()

    return asyncio.run(run())
