"""Launcher benchmarks: CLI start-up, `noetl run` to ready, idle memory, and SIGTERM-to-exit.

Everything is measured in one run against baselines measured in the same run:
- `noetl --version` (the installed console script; `python -m noetl --version` too) and `noetl --help`
  vs `python -c pass` (the interpreter's own floor);
- `noetl ctl status` vs `supervisorctl -c <rendered config> status` on the same running stack;
- `noetl run` -> ready: `/api/ready` answers 200 and every worker is registered (`GET /api/workers`),
  against an already running PostgreSQL and NATS; and -> every program RUNNING in supervisord;
- the CPU time all the run's processes used until ready (load on the machine does not change it);
- idle RSS of each process of the stack, read from /proc once it has been ready and idle 2 s;
- SIGTERM to `noetl run` -> its exit, with idle workers, and with every worker slot busy
  (2 workers x 4 commands of `sleep 1` in flight: the workers drain them before exiting).
Wall-clock medians, with the CPU time (user + system) of the CLI processes beside them: on a shared
machine the CPU figures move less. Printed as a table and written to bench/results/launcher.json.

The package's modules are byte-compiled first, as a wheel install does (PYTHONDONTWRITEBYTECODE
would otherwise make every process compile them again). To measure other code with the same
method, put its checkout first on PYTHONPATH.

Run: `make bench` or `.venv/bin/python bench/bench_launcher.py [--repeat N] [--starts N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services import nats_server, postgres_server  # noqa: E402
from tests.stack import Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WORKERS = 2
MIB = 1024 * 1024


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def compile_package(python: str) -> None:
    """Byte-compile the noetl that ``python`` imports (this checkout, or one on PYTHONPATH)."""
    where = subprocess.run(
        [python, "-c", "import noetl, os; print(os.path.dirname(noetl.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run([python, "-m", "compileall", "-q", where], check=True, stdout=subprocess.DEVNULL)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def processes(stack: Stack) -> list[dict[str, object]]:
    done = stack.ctl("status", "--json")
    return list(json.loads(done.stdout)) if done.returncode in (0, 3) else []


def registered(stack: Stack) -> bool:
    try:
        status, _ = stack.api("GET", "/api/ready")
        if status != 200:
            return False
        _, workers = stack.api("GET", "/api/workers")
    except OSError:
        return False
    return len([w for w in workers.get("items", []) if w.get("status") == "online"]) >= WORKERS


def until(
    predicate: Callable[[Stack], bool], stack: Stack, timeout: float = 120, interval: float = 0.01
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(stack):
            return
        if stack.proc is not None and stack.proc.poll() is not None:
            raise RuntimeError(f"noetl run exited:\n{stack.output()[-3000:]}")
        time.sleep(interval)
    raise RuntimeError(f"not there after {timeout}s:\n{stack.output()[-3000:]}")


def all_running(stack: Stack) -> bool:
    rows = processes(stack)
    return bool(rows) and all(row["state"] == "RUNNING" for row in rows)


def claimed_commands(stack: Stack) -> int:
    """Commands running on workers now (the server's metrics)."""
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = re.search(r'^noetl_commands\{status="claimed"\} ([0-9.]+)$', text, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def stop_busy(stack: Stack, in_flight: int = 8, timeout: float = 120) -> float:
    """Start, fill every worker slot with `sleep 1`, SIGTERM: seconds from the signal to the exit."""
    stack.start()
    until(registered, stack)
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


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and every descendant, the ended ones included."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        # children_*: descendants that ended and were reaped (a retried start, a finished tool).
        total += times.user + times.system + times.children_user + times.children_system
    return total


def idle_rss(stack: Stack) -> dict[str, float]:
    """RSS in MiB by role: launcher, supervisord, listener, server, worker (the largest worker)."""
    assert stack.proc is not None
    rows = processes(stack)
    found = {"launcher": rss_mib(stack.proc.pid)}
    supervisord = int(Path(stack.run_dir / "supervisord.pid").read_text().strip())
    found["supervisord"] = rss_mib(supervisord)
    for row in rows:
        role = "worker" if str(row["name"]).startswith("worker_") else str(row["name"])
        found[role] = max(found.get(role, 0.0), rss_mib(int(row["pid"])))  # type: ignore[call-overload]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=21, help="runs per CLI measurement (default 21)")
    parser.add_argument("--starts", type=int, default=10, help="start/stop cycles (default 10)")
    parser.add_argument("--busy-stops", type=int, default=3, help="stops with commands in flight (default 3)")
    args = parser.parse_args()
    python = sys.executable
    compile_package(python)
    noetl = [python, "-m", "noetl"]
    script = str(Path(python).with_name("noetl"))
    rows: dict[str, float] = {}
    cpu: dict[str, float] = {}

    # Interleave the commands so that machine noise hits each of them alike.
    commands = {
        "python -c pass": [python, "-c", "pass"],
        "noetl --version": [script, "--version"],
        "python -m noetl --version": [*noetl, "--version"],
        "noetl --help": [script, "--help"],
    }
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpus: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeat):
        for name, argv in commands.items():
            w, c = timed(argv)
            wall[name].append(w)
            cpus[name].append(c)

    memory: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        with postgres_server(tmp / "pg") as pg, nats_server(tmp / "nats") as nats:
            to_ready: list[float] = []
            cpu_to_ready: list[float] = []
            to_running: list[float] = []
            to_exit: list[float] = []
            for cycle in range(args.starts):
                pg.create_database(f"bench_{cycle}")
                stack = Stack(
                    home=tmp / f"home{cycle}",
                    env={**pg.env(f"bench_{cycle}"), "NATS_URL": nats.url, "NOETL_WORKERS": str(WORKERS)},
                )
                start = time.perf_counter()
                stack.start()
                until(registered, stack)
                to_ready.append(time.perf_counter() - start)
                assert stack.proc is not None
                cpu_to_ready.append(tree_cpu(stack.proc.pid))
                until(all_running, stack, interval=0.05)
                to_running.append(time.perf_counter() - start)
                time.sleep(2.0)  # idle: nothing submitted, heartbeats only
                memory.append(idle_rss(stack))
                if cycle == 0:
                    env = stack.full_env()
                    config = str(stack.run_dir / "supervisord.conf")
                    status = {
                        "supervisorctl status": [
                            python,
                            "-m",
                            "supervisor.supervisorctl",
                            "-c",
                            config,
                            "status",
                        ],
                        "noetl ctl status": [script, "ctl", "status"],
                    }
                    for name in status:
                        wall[name], cpus[name] = [], []
                    for _ in range(args.repeat):
                        for name, argv in status.items():
                            w, c = timed(argv, env)
                            wall[name].append(w)
                            cpus[name].append(c)
                start = time.perf_counter()
                assert stack.stop() == 0, stack.output()[-2000:]
                to_exit.append(time.perf_counter() - start)
            busy_exit: list[float] = []
            for cycle in range(args.busy_stops):
                database = f"bench_busy_{cycle}"
                pg.create_database(database)
                stack = Stack(
                    home=tmp / f"busy{cycle}",
                    env={**pg.env(database), "NATS_URL": nats.url, "NOETL_WORKERS": str(WORKERS)},
                )
                try:
                    busy_exit.append(stop_busy(stack))
                finally:
                    stack.stop()

    for name, values in wall.items():
        rows[name] = median_ms(values)
        cpu[name] = median_ms(cpus[name])
    rows["noetl run -> ready, every worker registered"] = median_ms(to_ready)
    # What the start costs whatever else runs on the machine: every process of the run, until ready.
    cpu["noetl run -> ready, every worker registered"] = median_ms(cpu_to_ready)
    rows["noetl run -> all RUNNING"] = median_ms(to_running)
    rows["SIGTERM -> exit (idle)"] = median_ms(to_exit)
    rows["SIGTERM -> exit (8 commands in flight)"] = median_ms(busy_exit)
    rss = {role: round(statistics.median(m[role] for m in memory), 1) for role in memory[0]}

    def ratio(name: str, base: str, figures: dict[str, float]) -> float:
        return round(figures[name] / figures[base], 2)

    ratios = {
        "noetl --version / python -c pass": ratio("noetl --version", "python -c pass", rows),
        "python -m noetl --version / python -c pass": ratio(
            "python -m noetl --version", "python -c pass", rows
        ),
        "noetl --help / python -c pass": ratio("noetl --help", "python -c pass", rows),
        "noetl ctl status / supervisorctl status": ratio("noetl ctl status", "supervisorctl status", rows),
    }
    cpu_ratios = {
        "noetl --version / python -c pass": ratio("noetl --version", "python -c pass", cpu),
        "noetl ctl status / supervisorctl status": ratio("noetl ctl status", "supervisorctl status", cpu),
    }

    print(f"{'measurement (median)':<46} {'wall ms':>9} {'CPU ms':>8}")
    for name, value in rows.items():
        print(f"{name:<46} {value:>9.1f} {cpu.get(name, float('nan')):>8.1f}")
    print()
    for name, value in ratios.items():
        cpu_text = f"{cpu_ratios[name]:.2f}x CPU" if name in cpu_ratios else ""
        print(f"{name:<46} {value:>8.2f}x {cpu_text:>12}")
    print()
    print("idle RSS (MiB, median over starts): " + ", ".join(f"{k} {v:.1f}" for k, v in rss.items()))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "launcher.json").write_text(
        json.dumps(
            {
                "medians_ms": rows,
                "cpu_medians_ms": cpu,
                "ratios": ratios,
                "cpu_ratios": cpu_ratios,
                "idle_rss_mib": rss,
                "repeat": args.repeat,
                "starts": args.starts,
                "busy_stops": args.busy_stops,
                "samples_s": {
                    "to_ready": to_ready,
                    "cpu_to_ready": cpu_to_ready,
                    "to_running": to_running,
                    "to_exit": to_exit,
                    "busy_exit": busy_exit,
                },
                "idle_rss_samples_mib": memory,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
