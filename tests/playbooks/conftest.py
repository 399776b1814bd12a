"""A real server and two real workers for the playbook tests, shared by the tests of a module.

Each module gets its own database and NATS server (the catalog and executions of one module do
not leak into another's counts). ``Playbooks`` adds the catalog and execution calls to the
worker harness's ``Cluster``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from noetl.protocol.words import EXECUTION_FINISHED
from tests.server.conftest import pg_fetch
from tests.services import Postgres, nats_server
from tests.worker.harness import Cluster, clean_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
WORKERS = ("worker_00", "worker_01")
_databases = itertools.count()


class Playbooks(Cluster):
    """The cluster, with NoETL's catalog and execution calls."""

    def register(self, content: str) -> dict[str, Any]:
        status, body = self.api("POST", "/api/catalog/register", {"content": content})
        assert status == 200, body
        return dict(body)

    def refused(self, content: str) -> str:
        """Register ``content``, expecting 422; the one-line reason."""
        status, body = self.api("POST", "/api/catalog/register", {"content": content})
        assert status == 422, body
        detail = str(body["detail"])
        assert "\n" not in detail, detail
        return detail

    def execute(self, path: str, payload: dict[str, Any] | None = None, **extra: Any) -> str:
        status, body = self.api("POST", "/api/execute", {"path": path, "payload": payload or {}, **extra})
        assert status == 200, body
        assert body["status"] == "started", body
        return str(body["execution_id"])

    def run(self, content: str, payload: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        """Register, execute and wait for the end; the execution."""
        path = self.register(content)["path"]
        return self.wait_ended(self.execute(path, payload), timeout)

    def wait_ended(self, execution_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            view = self.execution(execution_id)
            if view["status"] in EXECUTION_FINISHED:
                return view
            time.sleep(0.1)
        raise AssertionError(f"{execution_id} not ended after {timeout}s: {view}")

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        """Every event of the execution, paging through ``/events``."""
        found: list[dict[str, Any]] = []
        while True:
            after = found[-1]["event_id"] if found else 0
            status, body = self.api("GET", f"/api/executions/{execution_id}/events?limit=100&after={after}")
            assert status == 200, body
            found.extend(body["items"])
            if len(body["items"]) < 100:
                return found

    def steps(self, execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in execution["steps"]}

    def query(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Rows of the server's database (what the API does not show: commands, workers)."""
        return pg_fetch(self.env, sql, *args)

    def children(self, execution_id: str) -> list[dict[str, Any]]:
        status, body = self.api("GET", f"/api/executions?parent_execution_id={execution_id}")
        assert status == 200, body
        return list(body["items"])


def enters(events: list[dict[str, Any]]) -> Counter[str]:
    """``step.enter`` events by step."""
    return Counter(e["node_name"] for e in events if e["event_type"] == "step.enter")


def count(events: list[dict[str, Any]], kind: str, step: str | None = None) -> int:
    """Events of type ``kind`` (of ``step`` only, when given)."""
    return sum(1 for e in events if e["event_type"] == kind and (step is None or e["node_name"] == step))


class Scripted(BaseHTTPRequestHandler):
    """Answers each path with the next (status, JSON body) of its script, the last one forever."""

    server: Scripted.Server

    class Server(ThreadingHTTPServer):
        scripts: dict[str, list[tuple[int, Any]]]
        hits: Counter[str]

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        script = self.server.scripts.get(path, [(404, {"error": f"no {path}"})])
        seen = self.server.hits[path]
        self.server.hits[path] += 1
        status, body = script[min(seen, len(script) - 1)]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@contextlib.contextmanager
def scripted_http(scripts: dict[str, list[tuple[int, Any]]]) -> Iterator[Scripted.Server]:
    """A tiny HTTP server on a free 127.0.0.1 port; ``.hits`` counts the requests per path."""
    server = Scripted.Server(("127.0.0.1", 0), Scripted)
    server.scripts, server.hits = scripts, Counter()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def cluster(pg_server: Postgres, tmp: Path, concurrency: int = 8, **env: str) -> Iterator[Playbooks]:
    """A server and two workers (``concurrency`` slots each) on a database and NATS of their own;
    ``env``: more settings for all three."""
    name = f"noetl_playbooks_{next(_databases)}"
    pg_server.create_database(name)
    with nats_server(tmp / "nats") as nats:
        found = Playbooks(
            tmp=tmp,
            env=clean_env(
                **pg_server.env(name),
                NATS_URL=nats.url,
                NOETL_REAPER_INTERVAL="0.2",
                NOETL_LOG_LEVEL="info",
                **env,
            ),
        )
        try:
            found.start_server()
            for worker in WORKERS:
                found.start_worker(worker, NOETL_WORKER_CONCURRENCY=str(concurrency))
            for worker in WORKERS:
                found.wait_worker_ready(worker)
            yield found
        finally:
            found.stop_all()


@pytest.fixture(scope="module")
def playbooks(pg_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playbooks]:
    """A server and two workers on a database and NATS of this module's own."""
    with cluster(pg_server, tmp_path_factory.mktemp("playbooks")) as found:
        yield found
