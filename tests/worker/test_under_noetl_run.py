"""The issue's scenarios with workers supervised by `noetl run` (real supervisord, server, workers,
PostgreSQL and NATS): signals go through `noetl ctl`, supervisord restarts what dies."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import wait_until
from tests.stack import Stack
from tests.worker.harness import Api, assert_completed_once, event_types, worker_events
from tests.worker.procs import read_pids, wait_gone

pytestmark = pytest.mark.integration

WORKERS = {"worker_00", "worker_01"}


def start(stack: Stack) -> Api:
    """Start `noetl run` and wait until the server answers and both workers have registered."""
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    api = Api(stack.url)

    def registered() -> bool:
        items = api.api("GET", "/api/workers")[1]["items"]
        return {w["name"] for w in items if w["status"] == "online"} >= WORKERS

    wait_until(registered, 30, "both workers registered")
    return api


def running_on(api: Api, execution_id: str, timeout: float = 30) -> str:
    """The supervisord name of the worker that started the execution (worker ids are host:name:pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = worker_events(api.execution(execution_id), "started")
        if started:
            return str(started[0]["worker_id"]).split(":")[1]
        time.sleep(0.05)
    raise AssertionError(f"not started: {api.execution(execution_id)}")


def test_200_mixed_commands_complete_exactly_once(stack: Stack) -> None:
    api = start(stack)
    ids = []
    for i in range(200):
        if i % 2:
            ids.append(api.submit({"kind": "python", "code": "result = n + 1", "args": {"n": i}})[0])
        else:
            ids.append(api.submit({"kind": "shell", "command": ["echo", str(i)]})[0])
    api.wait_count("COMPLETED", 200, timeout=240)
    names: Counter[str] = Counter()
    for eid in ids:
        view = api.execution(eid)
        assert_completed_once(view)
        assert event_types(view).count("started") == 1
        assert view["commands"][0]["attempt"] == 1
        names[worker_events(view, "completed")[0]["worker_id"].split(":")[1]] += 1
    assert set(names) == WORKERS
    for status in ("RUNNING", "FAILED", "CANCELLED"):
        assert api.api("GET", f"/api/executions?status={status}&limit=1")[1]["total"] == 0


def test_sigterm_to_a_worker_running_a_3s_command(stack: Stack) -> None:
    api = start(stack)
    eid, _ = api.submit({"kind": "shell", "command": "sleep 3; echo done"})
    name = running_on(api, eid)
    done = stack.ctl("stop", name)  # supervisord: SIGTERM, SIGKILL after stopwaitsecs (10 s)
    assert done.returncode == 0, done.stdout + done.stderr
    # It drained and exited 0 by itself: supervisord did not have to kill it.
    assert f"stopped: {name} (exit status 0)" in stack.output()
    view = api.wait_finished([eid], timeout=30)[eid]
    assert_completed_once(view)
    assert view["commands"][0]["result"]["stdout"] == "done\n"
    assert event_types(view).count("started") == 1


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory the tools may write into: as root, they run as NOETL_USER (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="noetl-tool-files-"))
    os.chmod(path, 0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_sigkill_to_a_worker_mid_command(stack: Stack, shared: Path) -> None:
    api = start(stack)
    pids, marker = shared / "pids", shared / "marker"
    command = f"if [ -e {marker} ]; then echo again; else touch {marker}; echo $$ > {pids}; sleep 300; fi"
    eid, _ = api.submit({"kind": "shell", "command": command})
    name = running_on(api, eid)
    command_pids = read_pids(pids, 1)
    before = {r["name"]: r["pid"] for r in stack.status()}
    killed = stack.ctl("signal", "KILL", name)
    assert killed.returncode == 0, killed.stdout + killed.stderr
    assert wait_gone(command_pids) == []  # no orphan left running the command
    view = api.wait_finished([eid], timeout=60)[eid]
    assert_completed_once(view)
    command_row = view["commands"][0]
    assert command_row["lost_leases"] == 1 and command_row["attempt"] == 2
    assert command_row["result"]["stdout"] == "again\n"
    # supervisord started the killed worker again.
    rows = stack.wait_running({"server", *WORKERS})
    assert {r["name"]: r["pid"] for r in rows}[name] != before[name]
