"""A real worker's requests to a real server, counted by the gate between them.

The claims, and the reports, that a worker's jobs make while one request of their kind is in
flight go together in the next request; a lone command costs one request of each kind.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.faults.gate import Gate
from tests.services import wait_until
from tests.worker.harness import Cluster, assert_completed_once
from tests.worker.procs import read_pids

pytestmark = pytest.mark.integration

COMMANDS = 6


def sizes(gate: Gate, path: str) -> list[int]:
    """How many items each request to ``path`` carried, in order."""
    return [items for p, items in gate.requests if p == path]


def reaped(pids: list[int]) -> bool:
    """Whether these processes have ended and their parent (the worker) has collected them."""
    return not any(psutil.pid_exists(pid) for pid in pids)


def test_concurrent_claims_and_reports_go_together(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_server()
    pids = tmp_path / "pids"
    # Each tool waits for a file of its own: the first ends alone, the others once its report is held.
    tool = {
        "kind": "shell",
        "command": f"echo $$ >> {pids}; while [ ! -e {tmp_path}/go.$$ ]; do sleep 0.01; done",
    }
    submitted = [cluster.submit(tool) for _ in range(COMMANDS)]
    with Gate(cluster.url) as gate:
        first_report = gate.hold("/events", "request", "completed")
        cluster.start_worker("worker_00", NOETL_SERVER_URL=gate.url, NOETL_WORKER_CONCURRENCY=str(COMMANDS))
        cluster.wait_worker_ready("worker_00")
        first, *others = read_pids(pids, COMMANDS)  # every command claimed, its tool waiting
        (tmp_path / f"go.{first}").touch()
        first_report.wait(60)
        # The other tools end while the first report is held: their reports wait in the worker.
        for pid in others:
            (tmp_path / f"go.{pid}").touch()
        wait_until(lambda: reaped([first, *others]), 30, "the tools collected by the worker")
        first_report.release()
        views = cluster.wait_finished([eid for eid, _ in submitted], timeout=60)
        claims = sizes(gate, "/api/commands/claims")
        reports = sizes(gate, "/api/commands/events")

    for view in views.values():
        assert_completed_once(view)
    assert sum(claims) == COMMANDS and len(claims) < COMMANDS, claims
    assert sum(reports) == COMMANDS and reports[0] == 1, reports
    assert len(reports) < COMMANDS, reports  # the five held back went together (two requests: [1, 5])
    assert gate.count("/claim") == gate.count("/events", "completed") == COMMANDS  # each item once


def test_a_lone_command_costs_one_request_of_each_kind(cluster: Cluster) -> None:
    cluster.start_server()
    with Gate(cluster.url) as gate:
        cluster.start_worker("worker_00", NOETL_SERVER_URL=gate.url)
        cluster.wait_worker_ready("worker_00")
        eid, _ = cluster.submit({"kind": "shell", "command": "true"})
        view = cluster.wait_finished([eid], timeout=30)[eid]
        claims = sizes(gate, "/api/commands/claims")
        reports = sizes(gate, "/api/commands/events")
    assert_completed_once(view)
    assert (claims, reports) == ([1], [1])
