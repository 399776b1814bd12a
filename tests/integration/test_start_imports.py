"""What the server and a worker import to start, and what they leave for the first use (real processes).

`noetl run` with ``PYTHONPROFILEIMPORTTIME=1`` in its environment: every program it starts writes
each module it imports, when it first imports it, to its stderr, which reaches the run's output as
``name | import time: ... | module``. Their log lines go to the same stderr, so every module a
program imported before a line it logged is printed before that line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.stack import Stack

pytestmark = pytest.mark.integration

_IMPORT = re.compile(r"^(\S+) \| import time:\s+\d+ \|\s+\d+ \|\s*(\S+)\s*$", re.MULTILINE)

PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: one, path: tests/one}
workflow:
  - step: start
    tool: {kind: shell, command: "echo {{ workload.word }}"}
"""


def imported(stack: Stack, process: str, before: str | None = None) -> set[str]:
    """What ``process`` imported; with ``before``, until it logged the first line holding it."""
    output = stack.output()
    if before is not None:
        logged = re.search(rf"^{process} \| (?!import time:).*{re.escape(before)}", output, re.MULTILINE)
        assert logged, f"{process} did not log {before!r}"
        output = output[: logged.start()]
    return {module for name, module in _IMPORT.findall(output) if name == process}


def wait_for(predicate: Callable[[], bool], stack: Stack, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not seen in {timeout:g}s:\n{stack.output()[-3000:]}")


def test_the_programs_start_without_what_they_use_later(stack: Stack) -> None:
    stack.env.update(NOETL_WORKERS="1", PYTHONPROFILEIMPORTTIME="1")
    stack.start()
    stack.wait_running({"server", "worker_00"})
    stack.wait_ready()
    # Their lines logged once started (and all that they imported before, printed before them).
    for line in ("Application startup complete", " ready"):
        wait_for(lambda line=line: line in stack.output(), stack, line)
    server = imported(stack, "server", before="Application startup complete")
    worker = imported(stack, "worker_00", before=" ready")
    # What each one does import is listed: the checks below can fail.
    assert {"fastapi", "asyncpg", "nats", "uvicorn", "noetl.server.app"} <= server
    assert {"nats", "noetl.client.wire", "noetl.worker.run", "noetl.tools.deferred"} <= worker
    # The server without the UI: no Jinja2 (the UI's or the engine's sandbox), no YAML, no engine,
    # no pydantic 1 (noetl.supervisor.entry; FastAPI's attempts to import it are listed, at ~3 us,
    # but none of its modules is).
    later = {"jinja2", "yaml", "noetl.engine.decide", "noetl.engine.playbook", "pydantic.v1.main"}
    assert not later & server, later & server
    assert not {name for name in server if name.startswith("noetl.server.ui.")}
    # The worker, until it is registered and connected: no tool kind, no pydantic, no httpx (the
    # http kind's), none of its libraries' optional integrations (tried, as for pydantic 1 above).
    later = {"pydantic", "httpx", "noetl.tools.registry", "noetl.tools.shell", "duckdb", "aiohttp.client"}
    later |= {"click.core", "rich.console"}
    assert not later & worker, later & worker

    # Then the worker loads the tool kinds before any command comes.
    wait_for(lambda: "noetl.tools.registry" in imported(stack, "worker_00"), stack, "the tool kinds loaded")
    assert {"pydantic", "noetl.tools.shell"} <= imported(stack, "worker_00")

    # First use: a playbook registered and run loads the engine in the server.
    status, body = stack.api("POST", "/api/catalog/register", {"content": PLAYBOOK})
    assert status == 200, body
    status, body = stack.api("POST", "/api/execute", {"path": "tests/one", "payload": {"word": "hello"}})
    assert status == 200, body
    execution_id = body["execution_id"]

    def finished() -> bool:
        return stack.api("GET", f"/api/executions/{execution_id}")[1].get("status") == "COMPLETED"

    wait_for(finished, stack, "the execution COMPLETED")
    assert {"jinja2", "yaml", "noetl.engine.playbook"} <= imported(stack, "server")
    _, view = stack.api("GET", f"/api/executions/{execution_id}")
    assert [(step["name"], step["status"]) for step in view["steps"]] == [("start", "done")], view
    assert view["steps"][0]["result"]["stdout"].strip() == "hello", view
