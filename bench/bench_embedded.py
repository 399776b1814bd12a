"""Time from `noetl run` to ready with the embedded PostgreSQL and NATS, cold and warm.

Ready means: `/api/ready` answers 200 and every worker is registered (`GET /api/workers` lists
NOETL_WORKERS online workers). Cold: an empty NOETL_HOME (initdb, CREATE DATABASE, schema, JetStream
stream); warm: the same NOETL_HOME again after a clean stop. Baseline in the same run: the same
stack against an already running external PostgreSQL and NATS. Medians over --repeat runs;
printed and written to bench/results/embedded.json, with the CPU time every process of the run
used until ready (the figure that load on the machine does not change).

Run: `make bench` or `.venv/bin/python bench/bench_embedded.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_launcher import tree_cpu  # noqa: E402  (this script's own directory)

from tests.services import free_port, let_others_traverse, nats_server, postgres_server  # noqa: E402
from tests.stack import Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORKERS = 2


def until_ready(stack: Stack, cpu: list[float], timeout: float = 120) -> float:
    """Start `noetl run` and return the seconds until ready (API ready, all workers registered);
    append to ``cpu`` the CPU seconds every process of the run used until then."""
    start = time.perf_counter()
    proc = stack.start()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        try:
            status, _ = stack.api("GET", "/api/ready")
            if status == 200:
                _, workers = stack.api("GET", "/api/workers")
                online = [w for w in workers.get("items", []) if w.get("status") == "online"]
                if len(online) >= WORKERS:
                    ready = time.perf_counter() - start
                    cpu.append(tree_cpu(proc.pid))
                    return ready
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"not ready after {timeout}s:\n{stack.output()[-2000:]}")


def embedded_stack(home: Path) -> Stack:
    for name in ("POSTGRES_HOST", "NATS_URL"):
        os.environ.pop(name, None)
    return Stack(
        home=home,
        env={
            "NOETL_WORKERS": str(WORKERS),
            "NOETL_EMBEDDED_POSTGRES_PORT": str(free_port()),
            "NOETL_EMBEDDED_NATS_PORT": str(free_port()),
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="cold and warm starts each (default 5)")
    args = parser.parse_args()
    cold: list[float] = []
    warm: list[float] = []
    external: list[float] = []
    cpu: dict[str, list[float]] = {"cold": [], "warm": [], "external": []}
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        let_others_traverse(tmp)
        for i in range(args.repeat):
            home = tmp / f"embedded{i}"
            home.mkdir()
            let_others_traverse(home)
            stack = embedded_stack(home)
            try:
                cold.append(until_ready(stack, cpu["cold"]))
                assert stack.stop() == 0
                warm.append(until_ready(stack, cpu["warm"]))
            finally:
                stack.stop()
        with postgres_server(tmp / "pg") as pg, nats_server(tmp / "nats") as nats:
            for i in range(args.repeat):
                pg.create_database(f"bench_{i}")
                stack = Stack(
                    home=tmp / f"external{i}",
                    env={**pg.env(f"bench_{i}"), "NATS_URL": nats.url, "NOETL_WORKERS": str(WORKERS)},
                )
                try:
                    external.append(until_ready(stack, cpu["external"]))
                finally:
                    stack.stop()
    rows = {
        "external PostgreSQL+NATS (baseline)": statistics.median(external),
        "embedded, cold (empty NOETL_HOME)": statistics.median(cold),
        "embedded, warm (same NOETL_HOME)": statistics.median(warm),
    }
    cpu_rows = {
        name: statistics.median(cpu[key])
        for name, key in zip(rows, ("external", "cold", "warm"), strict=True)
    }
    base = rows["external PostgreSQL+NATS (baseline)"]
    print(f"{'noetl run -> ready, median of ' + str(args.repeat):<42} {'s':>7} {'x base':>8} {'CPU s':>7}")
    for name, value in rows.items():
        print(f"{name:<42} {value:>7.2f} {value / base:>8.2f} {cpu_rows[name]:>7.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embedded.json").write_text(
        json.dumps(
            {
                "median_seconds": rows,
                "median_cpu_seconds": cpu_rows,
                "samples": {"cold": cold, "warm": warm, "external": external, "cpu": cpu},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
