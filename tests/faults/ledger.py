"""Submit a workload through the real API, wait for it to settle, and check every command's fate.

The rule every fault test asserts: each command ends ``completed`` with exactly one ``completed``
event in its log (across all its attempts), or ``failed``/``dead`` with one ``failed`` event that
says why; none is left ``pending`` or ``claimed``. The ledger is everything the database holds,
not only what the test saw acknowledged: a submission whose answer was lost in a fault still
created a command that must end properly.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from noetl.protocol.words import EXECUTION_STATUSES
from tests.auth import RouteAuth

FINISHED = ("completed", "failed", "dead")
# The execution's status (NoETL's words) once its one command ended this way.
EXECUTION_OF = {"completed": "COMPLETED", "failed": "FAILED", "dead": "FAILED"}

# A mixed workload of real commands: shell no-ops, short sleeps and python no-ops.
TRUE = {"kind": "shell", "command": ["true"]}
PYTHON_NOOP = {"kind": "python", "code": "result = n", "args": {"n": 1}}


def sleep(seconds: float) -> dict[str, Any]:
    return {"kind": "shell", "command": f"sleep {seconds:g}"}


def mixed(count: int, sleeper: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``count`` tools cycling through true, a sleep and a python no-op."""
    kinds = [TRUE, dict(sleeper or sleep(1)), PYTHON_NOOP]
    return [dict(kinds[i % len(kinds)]) for i in range(count)]


@dataclass
class Verdict:
    """What the event log says about one command; ``problem`` is None when it ended properly."""

    execution_id: str
    status: str
    completed_events: int
    failed_events: int
    lost_leases: int
    attempts: int
    released: int
    problem: str | None


def judge(execution: Mapping[str, Any]) -> Verdict:
    """Check one execution (GET /api/executions/{id}) against the rule above."""
    (command,) = execution["commands"]
    events = [e for e in execution["events"] if e["command_id"] == command["command_id"]]
    kinds = Counter(e["type"] for e in events)
    status = command["status"]
    problem: str | None = None
    if status not in FINISHED or execution["status"] != EXECUTION_OF[status]:
        problem = f"left {status} (execution {execution['status']})"
    elif status == "completed":
        done = [e for e in events if e["type"] == "completed"]
        if len(done) != 1:
            problem = f"{len(done)} completed events"
        elif kinds["failed"]:
            problem = "completed, but a failed event too"
        elif done[0]["attempt"] != command["attempt"]:
            problem = f"completed by attempt {done[0]['attempt']}, command at attempt {command['attempt']}"
    else:
        failed = [e for e in events if e["type"] == "failed"]
        if kinds["completed"]:
            problem = f"{status}, but {kinds['completed']} completed event(s)"
        elif len(failed) != 1 or not str(failed[0]["payload"].get("error") or "").strip():
            problem = f"{status} with {len(failed)} failed events and no reason"
        elif status == "dead" and command["lost_leases"] < command["max_attempts"]:
            problem = f"dead after {command['lost_leases']} of {command['max_attempts']} attempts"
    return Verdict(
        execution_id=str(execution["execution_id"]),
        status=status,
        completed_events=kinds["completed"],
        failed_events=kinds["failed"],
        lost_leases=int(command["lost_leases"]),
        attempts=int(command["attempt"]),
        released=kinds["released"],
        problem=problem,
    )


@dataclass
class Load:
    """A client of one stack's API that submits commands and keeps what was acknowledged."""

    url: str
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, tool: Mapping[str, Any], patience: float = 60, timeout: float = 120) -> str:
        """Submit one command, retrying while the server is away (a fault); its execution id."""
        body = {"tool": dict(tool), "timeout": timeout, "max_attempts": 3}
        deadline = time.monotonic() + patience
        while True:
            try:
                response = httpx.post(f"{self.url}/api/executions", json=body, timeout=10, auth=RouteAuth())
                if response.status_code == 201:
                    execution_id = str(response.json()["execution_id"])
                    with self._lock:
                        self.accepted.append(execution_id)
                    return execution_id
                if response.status_code != 503:
                    raise AssertionError(f"submit refused: {response.status_code} {response.text}")
            except httpx.TransportError:
                pass
            with self._lock:
                self.refused += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"could not submit for {patience}s")
            time.sleep(0.2)

    def submit_all(self, tools: Iterable[Mapping[str, Any]], pace: float = 0.0) -> list[str]:
        ids = []
        for tool in tools:
            ids.append(self.submit(tool))
            if pace:
                time.sleep(pace)
        return ids

    def in_background(self, tools: Iterable[Mapping[str, Any]], pace: float) -> threading.Thread:
        """Keep submitting ``tools`` at ``pace`` seconds apart in a thread (through the fault)."""
        thread = threading.Thread(target=self.submit_all, args=(list(tools), pace), daemon=True)
        thread.start()
        return thread

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=10, auth=RouteAuth())
        response.raise_for_status()
        return response.json()

    def all_execution_ids(self) -> list[str]:
        """Every execution the database holds (pages of 500)."""
        ids: list[str] = []
        while True:
            page = self.get(f"/api/executions?limit=500&offset={len(ids)}")
            ids.extend(str(item["execution_id"]) for item in page["items"])
            if len(ids) >= page["total"] or not page["items"]:
                return ids

    def counts(self) -> Counter[str]:
        """Executions by status."""
        counts: Counter[str] = Counter()
        for status in EXECUTION_STATUSES:
            counts[status] = int(self.get(f"/api/executions?status={status}&limit=1")["total"])
        return counts

    def command_counts(self) -> Counter[str]:
        """Commands by status, from the server's metrics."""
        response = httpx.get(f"{self.url}/metrics", timeout=10, auth=RouteAuth())
        response.raise_for_status()
        found = re.findall(r'^noetl_commands\{status="(\w+)"\} ([0-9.]+)$', response.text, re.MULTILINE)
        return Counter({status: int(float(n)) for status, n in found})

    def wait_settled(self, expected: int, timeout: float) -> Counter[str]:
        """Wait until at least ``expected`` executions exist and none is RUNNING."""
        deadline = time.monotonic() + timeout
        counts: Counter[str] = Counter()
        while time.monotonic() < deadline:
            try:
                counts = self.counts()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.3)
                continue
            total = sum(counts.values())
            if total >= expected and counts["RUNNING"] == 0:
                return counts
            time.sleep(0.3)
        raise AssertionError(f"not settled after {timeout}s: {dict(counts)} (expected {expected})")

    def verdicts(self) -> list[Verdict]:
        return [judge(self.get(f"/api/executions/{eid}")) for eid in self.all_execution_ids()]


def assert_all_ended_properly(load: Load, at_least: int) -> list[Verdict]:
    """The rule, over every execution in the database; returns the verdicts for further checks."""
    verdicts = load.verdicts()
    assert len(verdicts) >= at_least, f"{len(verdicts)} executions, expected at least {at_least}"
    assert set(load.accepted) <= {v.execution_id for v in verdicts}, "an acknowledged submission is missing"
    bad = [v for v in verdicts if v.problem]
    assert not bad, f"{len(bad)} command(s) did not end properly: {bad[:5]}"
    return verdicts


def wait_claimed(load: Load, at_least: int, timeout: float) -> None:
    """Wait until at least ``at_least`` commands are claimed (running on workers)."""
    deadline = time.monotonic() + timeout
    counts: Counter[str] = Counter()
    while time.monotonic() < deadline:
        counts = load.command_counts()
        if counts["claimed"] >= at_least:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {at_least} commands claimed after {timeout}s: {dict(counts)}")
