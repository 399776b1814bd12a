"""Playbooks for the fault suite whose every step writes its side effect into the ledger, and the
judge of an execution's steps.

Each python step appends a line to ``<ledger>/<token>.<step>`` (``.<iteration>`` in a loop), the
token being the execution's (in its payload). The judge reads the server's database: every step
command ended with one ``completed`` event and ran within the at-least-once bound, and the engine
recorded each transition once: one ``step.enter`` per step, one ``call.done`` per step or
iteration, one ``playbook.completed``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import yaml

from tests.faults.ledger import Ledger, beyond_bound
from tests.faults.rig import Rig
from tests.server.conftest import pg_fetch

CODE = (
    "import time, uuid\n"
    "with open(ledger + '/' + token + '.' + name, 'a') as f:\n"
    "    f.write(uuid.uuid4().hex + '\\n')\n"
    "time.sleep(float(seconds))\n"
    "result = name\n"
)


def step(
    name: str, seconds: float = 0, following: Any = None, ledger_name: str | None = None
) -> dict[str, Any]:
    """A python step that writes its line (under ``ledger_name``, default its name) and sleeps."""
    found: dict[str, Any] = {
        "step": name,
        "tool": {
            "kind": "python",
            "code": CODE,
            "input": {
                "ledger": "{{ workload.ledger }}",
                "token": "{{ workload.token }}",
                "name": ledger_name or name,
                "seconds": seconds,
            },
        },
    }
    if following is not None:
        found["next"] = following
    return found


def playbook(path: str, steps: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "noetl.io/v2",
            "kind": "Playbook",
            "metadata": {"name": path.replace("/", "_"), "path": path},
            "workflow": steps,
        },
        sort_keys=False,
    )


def run(rig: Rig, content: str, extra: dict[str, Any] | None = None) -> tuple[str, str]:
    """Register and execute with a new token; (execution id, token)."""
    status, body = rig.cluster.api("POST", "/api/catalog/register", {"content": content})
    assert status == 200, body
    token = rig.ledger.token()
    payload = {"ledger": str(rig.ledger.root), "token": token, **(extra or {})}
    status, body = rig.cluster.api("POST", "/api/execute", {"path": body["path"], "payload": payload})
    assert status == 200, body
    return str(body["execution_id"]), token


def wait_ended(rig: Rig, execution_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (view := rig.cluster.execution(execution_id))["status"] == "RUNNING":
        assert time.monotonic() < deadline, view
        time.sleep(0.1)
    return view


@dataclass
class StepVerdict:
    name: str  # the ledger name: step, or step.iteration
    runs: int
    started: int
    completed: int
    lost_leases: int
    problem: str | None


def judge_steps(rig: Rig, execution_id: str, token: str) -> dict[str, StepVerdict]:
    """Every step command's verdict, by ledger name; asserts the engine's counts and the rule."""
    return judge_playbook(rig.cluster.env, rig.ledger, execution_id, token)


def judge_playbook(
    pg_env: dict[str, str], ledger: Ledger, execution_id: str, token: str
) -> dict[str, StepVerdict]:
    """``judge_steps`` on the database of ``pg_env`` (POSTGRES_* variables)."""
    commands = pg_fetch(
        pg_env,
        "SELECT command_id, step, iteration, status, lost_leases FROM noetl.commands WHERE execution_id = $1",
        _uuid(execution_id),
    )
    events = pg_fetch(
        pg_env,
        "SELECT command_id, type, attempt, node_name, (payload ->> 'iteration')::int AS iteration "
        "FROM noetl.events WHERE execution_id = $1",
        _uuid(execution_id),
    )
    verdicts: dict[str, StepVerdict] = {}
    for cmd in commands:
        name = cmd["step"] if cmd["iteration"] is None else f"{cmd['step']}.{cmd['iteration']}"
        mine = [e for e in events if e["command_id"] == cmd["command_id"]]
        started = [e["attempt"] for e in mine if e["type"] == "started"]
        released = sum(1 for e in mine if e["type"] == "released")
        completed = sum(1 for e in mine if e["type"] == "completed")
        runs = ledger.runs(f"{token}.{name}")
        problem = beyond_bound(runs, started, cmd["lost_leases"], released)
        if cmd["status"] != "completed" or completed != 1 or runs < 1:
            problem = f"{cmd['status']} with {completed} completed events and {runs} runs"
        verdicts[name] = StepVerdict(name, runs, len(started), completed, cmd["lost_leases"], problem)
    bad = [v for v in verdicts.values() if v.problem]
    assert not bad, bad
    # The engine's transitions, once each.
    enters = Counter(e["node_name"] for e in events if e["type"] == "step.enter")
    assert set(enters.values()) == {1}, enters
    calls = Counter((e["node_name"], e["iteration"]) for e in events if e["type"] == "call.done")
    assert set(calls.values()) == {1}, calls
    assert sum(1 for e in events if e["type"] == "playbook.completed") == 1
    return verdicts


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)
