"""Playbook engine overhead: `.venv/bin/python bench/bench_playbooks.py [--rounds R] [--steps N] [--items M]`.

On a real PostgreSQL, NATS, server and two workers, times a linear playbook of N no-op python
steps from `POST /api/execute` to COMPLETED, against the baseline measured in the same run: the
same N no-op python commands submitted with `POST /api/executions` one after another, each waited
for before the next (what a shell script of `noetl submit --wait` lines does, minus the CLI's start).
Both sides poll every 5 ms. The engine's overhead per step is the difference divided by N: the
step's transition (state load, decision, events, next command) recorded in the completion's
transaction, minus the client round trips the playbook saves.

Loops: a parallel loop of M (1,000) iterations of a no-op shell command (`true`), execute ->
COMPLETED, in iterations/s, against the same M `true` commands submitted at once with
`POST /api/executions` (what M `noetl submit` calls do) and waited for, in commands/s.

Fan-in: `start` fans out to a one-step and a two-step branch of `true` steps that join in `reduce`;
the latency from the last branch's command finished to `reduce`'s command claimed by a worker
(database timestamps), against the same hand-over on the longer branch's linear arc (b1 -> b2).

Medians over the rounds; writes bench/results/playbooks.json; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noetl.protocol.words import EXECUTION_FINISHED  # noqa: E402
from tests.server.conftest import pg_fetch  # noqa: E402
from tests.services import nats_server, postgres_server  # noqa: E402
from tests.worker.harness import Cluster, clean_env  # noqa: E402

RESULTS = ROOT / "bench" / "results"
POLL = 0.005
CODE = "result = 1"


def linear(steps: int) -> str:
    names = ["start", *(f"s{i}" for i in range(1, steps))]
    body = "".join(
        f"  - step: {name}\n    tool: {{kind: python, code: '{CODE}'}}\n"
        + (f"    next: {names[i + 1]}\n" if i + 1 < steps else "")
        for i, name in enumerate(names)
    )
    head = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: linear, path: bench/linear}\n"
    return f"{head}workflow:\n{body}"


NOOP = {"kind": "shell", "command": "true"}

LOOP = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: loop, path: bench/loop}
workflow:
  - step: start
    loop: {in: "{{ workload.items }}", iterator: x, spec: {mode: parallel}}
    tool: {kind: shell, command: "true"}
"""

FAN_IN = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fan_in, path: bench/fan_in}
workflow:
  - step: start
    next:
      spec: {mode: inclusive}
      arcs: [{step: a1}, {step: b1}]
  - step: a1
    tool: {kind: shell, command: "true"}
    next: reduce
  - step: b1
    tool: {kind: shell, command: "true"}
    next: b2
  - step: b2
    tool: {kind: shell, command: "true"}
    next: reduce
  - step: reduce
    tool: {kind: shell, command: "true"}
"""


def wait_ended(cluster: Cluster, execution_id: str) -> dict[str, Any]:
    while True:
        view = cluster.execution(execution_id)
        if view["status"] in EXECUTION_FINISHED:
            assert view["status"] == "COMPLETED", view
            return view
        time.sleep(POLL)


def playbook_run(cluster: Cluster) -> float:
    start = time.perf_counter()
    status, body = cluster.api("POST", "/api/execute", {"path": "bench/linear"})
    assert status == 200, body
    wait_ended(cluster, body["execution_id"])
    return time.perf_counter() - start


def submits_run(cluster: Cluster, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        execution_id, _ = cluster.submit({"kind": "python", "code": CODE})
        wait_ended(cluster, execution_id)
    return time.perf_counter() - start


def loop_run(cluster: Cluster, items: int) -> float:
    """Seconds from execute to COMPLETED of a parallel loop of ``items`` `true` iterations."""
    start = time.perf_counter()
    status, body = cluster.api(
        "POST", "/api/execute", {"path": "bench/loop", "payload": {"items": list(range(items))}}
    )
    assert status == 200, body
    wait_ended(cluster, body["execution_id"])
    return time.perf_counter() - start


def burst_run(cluster: Cluster, commands: int) -> float:
    """Seconds from the first of ``commands`` `true` submissions to the last one COMPLETED."""
    start = time.perf_counter()
    ids = [cluster.submit(NOOP)[0] for _ in range(commands)]
    for execution_id in ids:
        wait_ended(cluster, execution_id)
    return time.perf_counter() - start


def fan_in_run(cluster: Cluster) -> tuple[float, float]:
    """(last branch finished -> reduce claimed, b1 finished -> b2 claimed), in seconds."""
    status, body = cluster.api("POST", "/api/execute", {"path": "bench/fan_in"})
    assert status == 200, body
    wait_ended(cluster, body["execution_id"])
    rows = pg_fetch(
        cluster.env,
        "SELECT step, claimed_at, finished_at FROM noetl.commands WHERE execution_id = $1::uuid",
        body["execution_id"],
    )
    by_step = {r["step"]: r for r in rows}
    last = max(by_step["a1"]["finished_at"], by_step["b2"]["finished_at"])
    join = (by_step["reduce"]["claimed_at"] - last).total_seconds()
    linear = (by_step["b2"]["claimed_at"] - by_step["b1"]["finished_at"]).total_seconds()
    return join, linear


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each (default 7)")
    parser.add_argument("--steps", type=int, default=10, help="steps of the playbook (default 10)")
    parser.add_argument("--items", type=int, default=1000, help="iterations of the loop (default 1000)")
    parser.add_argument("--loop-rounds", type=int, default=3, help="rounds of the loop (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="noetl-bench-pb-") as tmp:
        root = Path(tmp)
        with postgres_server(root / "pg") as pg, nats_server(root / "nats") as nats:
            pg.create_database("bench")
            cluster = Cluster(
                tmp=root,
                env=clean_env(**pg.env("bench"), NATS_URL=nats.url, NOETL_LOG_LEVEL="info"),
            )
            try:
                cluster.start_server()
                for name in ("worker_00", "worker_01"):
                    cluster.start_worker(name)
                for name in ("worker_00", "worker_01"):
                    cluster.wait_worker_ready(name)
                status, body = cluster.api("POST", "/api/catalog/register", {"content": linear(args.steps)})
                assert status == 200, body
                playbook_run(cluster)  # warm: the parsed playbook cached, connections open
                submits_run(cluster, 2)
                playbook: list[float] = []
                submits: list[float] = []
                for _ in range(args.rounds):
                    playbook.append(playbook_run(cluster))
                    submits.append(submits_run(cluster, args.steps))
                for content in (LOOP, FAN_IN):
                    status, body = cluster.api("POST", "/api/catalog/register", {"content": content})
                    assert status == 200, body
                loop_run(cluster, 10)  # warm
                loops: list[float] = []
                bursts: list[float] = []
                for _ in range(args.loop_rounds):
                    loops.append(loop_run(cluster, args.items))
                    bursts.append(burst_run(cluster, args.items))
                joins: list[float] = []
                linears: list[float] = []
                for _ in range(args.rounds):
                    join, linear_ = fan_in_run(cluster)
                    joins.append(join)
                    linears.append(linear_)
            finally:
                cluster.stop_all()
    pb, sub = statistics.median(playbook), statistics.median(submits)
    result = {
        "steps": args.steps,
        "rounds": args.rounds,
        "playbook_s": round(pb, 3),
        "submits_s": round(sub, 3),
        "playbook_per_step_ms": round(pb / args.steps * 1000, 1),
        "submit_per_command_ms": round(sub / args.steps * 1000, 1),
        "engine_overhead_per_step_ms": round((pb - sub) / args.steps * 1000, 1),
        "samples_s": {"playbook": [round(x, 3) for x in playbook], "submits": [round(x, 3) for x in submits]},
        "loop": {
            "items": args.items,
            "rounds": args.loop_rounds,
            "loop_s": round(statistics.median(loops), 3),
            "iterations_per_s": round(args.items / statistics.median(loops), 1),
            "submits_s": round(statistics.median(bursts), 3),
            "commands_per_s": round(args.items / statistics.median(bursts), 1),
            "samples_s": {"loop": [round(x, 3) for x in loops], "submits": [round(x, 3) for x in bursts]},
        },
        "fan_in": {
            "rounds": args.rounds,
            "last_branch_to_reduce_claimed_ms": round(statistics.median(joins) * 1000, 1),
            "linear_arc_to_next_claimed_ms": round(statistics.median(linears) * 1000, 1),
            "samples_ms": {
                "fan_in": [round(x * 1000, 1) for x in joins],
                "linear": [round(x * 1000, 1) for x in linears],
            },
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "playbooks.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
