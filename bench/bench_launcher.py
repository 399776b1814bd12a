"""Launcher benchmarks: CLI start-up, time to all RUNNING, and SIGTERM-to-exit.

Everything is measured in one run against baselines measured in the same run:
- `noetl --version` and `noetl --help` vs `python -c pass` (the interpreter's own floor);
- `noetl ctl status` vs `supervisorctl -c <rendered config> status` on the same running stack;
- `noetl run` -> every program RUNNING (as `noetl ctl status` sees it), and -> /api/ready;
- SIGTERM to `noetl run` -> its exit, with idle workers, and with every worker slot busy
  (2 workers x 4 commands of `sleep 1` in flight: the workers drain them before exiting).
Medians over repeated runs; results printed as a table and written to bench/results/launcher.json.

Run: `make bench` or `.venv/bin/python bench/bench_launcher.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import nats_server, postgres_server  # noqa: E402
from tests.stack import Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def claimed_commands(stack: Stack) -> int:
    """Commands running on workers now (the server's metrics)."""
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r'^noetl_commands\{status="claimed"\} ([0-9.]+)$', text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def stop_busy(stack: Stack, in_flight: int = 8, timeout: float = 120) -> float:
    """Start, fill every worker slot with `sleep 1`, SIGTERM: seconds from the signal to the exit."""
    stack.start()
    stack.wait_running({"server", "worker_00", "worker_01"})
    stack.wait_ready()
    for _ in range(in_flight):
        status, body = stack.api("POST", "/api/executions", {"tool": {"kind": "shell", "command": "sleep 1"}})
        assert status == 201, body
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if claimed_commands(stack) >= in_flight:
            break
        time.sleep(0.02)
    else:
        raise RuntimeError(f"{in_flight} commands not running after {timeout}s")
    start = time.perf_counter()
    assert stack.stop(timeout) == 0, stack.output()[-2000:]
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=15, help="runs per CLI measurement (default 15)")
    parser.add_argument("--starts", type=int, default=5, help="start/stop cycles of `noetl run` (default 5)")
    parser.add_argument("--busy-stops", type=int, default=3, help="stops with commands in flight (default 3)")
    args = parser.parse_args()
    python = sys.executable
    noetl = [python, "-m", "noetl"]
    rows: dict[str, float] = {}

    # Interleave the commands so that machine noise hits each of them alike.
    samples: dict[str, list[float]] = {"python -c pass": [], "noetl --version": [], "noetl --help": []}
    for _ in range(args.repeat):
        samples["python -c pass"].append(timed([python, "-c", "pass"]))
        samples["noetl --version"].append(timed([*noetl, "--version"]))
        samples["noetl --help"].append(timed([*noetl, "--help"]))

    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        with postgres_server(tmp / "pg") as pg, nats_server(tmp / "nats") as nats:
            to_running: list[float] = []
            to_ready: list[float] = []
            to_exit: list[float] = []
            for cycle in range(args.starts):
                pg.create_database(f"bench_{cycle}")
                stack = Stack(
                    home=tmp / f"home{cycle}", env={**pg.env(f"bench_{cycle}"), "NATS_URL": nats.url}
                )
                start = time.perf_counter()
                stack.start()
                stack.wait_running({"server", "worker_00", "worker_01"})
                to_running.append(time.perf_counter() - start)
                stack.wait_ready()
                to_ready.append(time.perf_counter() - start)
                if cycle == 0:
                    env = stack.full_env()
                    config = str(stack.run_dir / "supervisord.conf")
                    samples["noetl ctl status"] = []
                    samples["supervisorctl status"] = []
                    for _ in range(args.repeat):
                        samples["noetl ctl status"].append(timed([*noetl, "ctl", "status"], env))
                        samples["supervisorctl status"].append(
                            timed([python, "-m", "supervisor.supervisorctl", "-c", config, "status"], env)
                        )
                start = time.perf_counter()
                stack.stop()
                to_exit.append(time.perf_counter() - start)
            busy_exit: list[float] = []
            for cycle in range(args.busy_stops):
                database = f"bench_busy_{cycle}"
                pg.create_database(database)
                stack = Stack(home=tmp / f"busy{cycle}", env={**pg.env(database), "NATS_URL": nats.url})
                try:
                    busy_exit.append(stop_busy(stack))
                finally:
                    stack.stop()

    for name, values in samples.items():
        rows[name] = median_ms(values)
    rows["noetl run -> all RUNNING"] = median_ms(to_running)
    rows["noetl run -> /api/ready"] = median_ms(to_ready)
    rows["SIGTERM -> exit (idle)"] = median_ms(to_exit)
    rows["SIGTERM -> exit (8 commands in flight)"] = median_ms(busy_exit)
    ratios = {
        "noetl --version / python -c pass": round(rows["noetl --version"] / rows["python -c pass"], 2),
        "noetl --help / python -c pass": round(rows["noetl --help"] / rows["python -c pass"], 2),
        "noetl ctl status / supervisorctl status": round(
            rows["noetl ctl status"] / rows["supervisorctl status"], 2
        ),
    }

    print(f"{'measurement (median)':<42} {'ms':>9}")
    for name, value in rows.items():
        print(f"{name:<42} {value:>9.1f}")
    print()
    for name, ratio in ratios.items():
        print(f"{name:<42} {ratio:>9.2f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "launcher.json").write_text(
        json.dumps(
            {
                "medians_ms": rows,
                "ratios": ratios,
                "repeat": args.repeat,
                "starts": args.starts,
                "busy_stops": args.busy_stops,
                "samples_s": {
                    "to_running": to_running,
                    "to_ready": to_ready,
                    "to_exit": to_exit,
                    "busy_exit": busy_exit,
                },
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
