"""Chained dispatch with a real worker: a step's end brings the next step back in its answer.

One worker of one slot (the cluster's second is stopped): a linear playbook's later steps are
handed in the answers, never published; a fan-out hands one branch and publishes the other, and
the worker never holds two leases at once; a worker that is stopping asks for nothing, so the
next step goes out as a notice and another worker runs it.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.playbooks.conftest import Playbooks, cluster
from tests.services import Postgres, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def python_step(name: str, code: str, following: str | None = None, **inputs: Any) -> str:
    text = f"  - step: {name}\n    tool:\n      kind: python\n      code: {json.dumps(code)}\n"
    if inputs:
        text += "      input: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in inputs.items()) + "}\n"
    return text + (f"    next: {following}\n" if following else "")


def playbook(path: str, *steps: str) -> str:
    return (
        f"apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {{name: x, path: {path}}}\nworkflow:\n"
        + "".join(steps)
    )


ADD = "result = {'n': int(n) + 1}"
LINEAR = playbook(
    "tests/chained/linear",
    python_step("start", ADD, "second", n="0"),
    python_step("second", ADD, "third", n="{{ start.n }}"),
    python_step("third", ADD, n="{{ second.n }}"),
)
NAP = "import time\ntime.sleep(float(seconds))\nresult = 'ok'"
FAN_OUT = playbook(
    "tests/chained/fan_out",
    python_step("start", NAP, "[a, b]", seconds="0").replace(
        "next: [a, b]", "next: {spec: {mode: inclusive}, arcs: [{step: a}, {step: b}]}"
    ),
    python_step("a", NAP, seconds="0.3"),
    python_step("b", NAP, seconds="0.3"),
)
SLOW_START = playbook(
    "tests/chained/slow_start",
    python_step("start", NAP, "second", seconds="2"),
    python_step("second", ADD, n="41"),
)


@pytest.fixture(scope="module")
def one_slot(pg_server: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Playbooks]:
    """A server and one worker of one slot."""
    with cluster(pg_server, tmp_path_factory.mktemp("chained"), concurrency=1) as found:
        stop_worker(found, "worker_01")
        yield found


def stop_worker(found: Playbooks, name: str) -> None:
    proc = found.workers[name]
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def commands(found: Playbooks, execution_id: str) -> dict[str, dict[str, Any]]:
    rows = found.query(
        "SELECT command_id::text, step, status, attempt, worker_id, claimed_at, finished_at, claim_request "
        "FROM noetl.commands WHERE execution_id = $1 ORDER BY created_at",
        uuid.UUID(execution_id),
    )
    return {r["step"]: r for r in rows}


def handed(row: dict[str, Any]) -> bool:
    """Claimed in a report's answer: under the report's key (a claim request's is random)."""
    return bool(row["claim_request"] and row["claim_request"].startswith("chain "))


def counts(found: Playbooks) -> tuple[float, float]:
    """The server's counts so far: notices published, and commands handed in answers."""
    text = httpx.get(found.url + "/metrics", auth=found.auth(), timeout=10).text
    values = []
    for name in ("noetl_notices_published_total", "noetl_commands_handed_total"):
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        assert match, f"{name} is not exported"
        values.append(float(match.group(1)))
    return values[0], values[1]


def since(found: Playbooks, before: tuple[float, float]) -> tuple[float, float]:
    """Notices published and commands handed since ``before`` (the published one once acked)."""
    now = counts(found)
    return now[0] - before[0], now[1] - before[1]


def test_a_linear_playbooks_next_steps_come_in_the_answers(one_slot: Playbooks) -> None:
    path = one_slot.register(LINEAR)["path"]
    before = counts(one_slot)
    execution_id = one_slot.execute(path)
    view = one_slot.wait_ended(execution_id)
    assert (view["status"], view["result"]) == ("COMPLETED", {"n": 3})
    rows = commands(one_slot, execution_id)
    assert [(s, r["status"], r["attempt"]) for s, r in rows.items()] == [
        ("start", "completed", 1),
        ("second", "completed", 1),
        ("third", "completed", 1),
    ]
    assert [handed(r) for r in rows.values()] == [False, True, True]
    assert since(one_slot, before) == (1, 2)  # start's notice alone; second and third handed


def test_a_fan_out_hands_one_branch_within_the_workers_one_slot(one_slot: Playbooks) -> None:
    path = one_slot.register(FAN_OUT)["path"]
    before = counts(one_slot)
    execution_id = one_slot.execute(path)
    assert one_slot.wait_ended(execution_id)["status"] == "COMPLETED"
    rows = commands(one_slot, execution_id)
    assert sorted(rows) == ["a", "b", "start"]
    # One branch came in start's answer; the other went out as a notice.
    assert sorted(handed(rows[s]) for s in ("a", "b")) == [False, True]
    assert since(one_slot, before) == (2, 1)
    # One slot: the worker never held two leases at once.
    spans = sorted((r["claimed_at"], r["finished_at"]) for r in rows.values())
    for (_, end), (begin, _) in itertools.pairwise(spans):
        assert end <= begin, spans


def test_a_stopping_worker_takes_nothing_more(one_slot: Playbooks) -> None:
    path = one_slot.register(SLOW_START)["path"]
    before = counts(one_slot)
    execution_id = one_slot.execute(path)
    wait_until(lambda: commands(one_slot, execution_id)["start"]["status"] == "claimed", 30, "start claimed")
    old = one_slot.worker_id("worker_00")
    stop_worker(one_slot, "worker_00")  # drains: start ends, reported without take
    rows = commands(one_slot, execution_id)
    assert (rows["start"]["status"], rows["start"]["worker_id"]) == ("completed", old)
    assert (rows["second"]["status"], rows["second"]["worker_id"]) == ("pending", None)
    one_slot.start_worker("worker_02", NOETL_WORKER_CONCURRENCY="1")
    one_slot.wait_worker_ready("worker_02")
    view = one_slot.wait_ended(execution_id)
    assert (view["status"], view["result"]) == ("COMPLETED", {"n": 42})
    second = commands(one_slot, execution_id)["second"]
    assert (second["attempt"], second["worker_id"]) == (1, one_slot.worker_id("worker_02"))
    assert not handed(second)
    published, handed_now = since(one_slot, before)
    # start's notice and second's (again, too, if worker_02 took long to start: a lost notice's).
    assert published >= 2 and handed_now == 0
