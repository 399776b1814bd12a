"""Playbook engine overhead: `.venv/bin/python bench/bench_playbooks.py [--rounds R] [--steps N]`.

On a real PostgreSQL, NATS, server and two workers, times a linear playbook of N no-op python
steps from `POST /api/execute` to COMPLETED, against the baseline measured in the same run: the
same N no-op python commands submitted with `POST /api/executions` one after another, each waited
for before the next (what a shell script of `noetl submit --wait` lines does, minus the CLI's start).
Both sides poll every 5 ms. The engine's overhead per step is the difference divided by N: the
step's transition (state load, decision, events, next command) recorded in the completion's
transaction, minus the client round trips the playbook saves. Medians over the rounds; writes
bench/results/playbooks.json; asserts nothing.
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each (default 7)")
    parser.add_argument("--steps", type=int, default=10, help="steps of the playbook (default 10)")
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
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "playbooks.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
