"""Throughput, latency and memory: `noetl run` against procrastinate, on one PostgreSQL, in one run.

Workload: --commands no-op commands submitted at once by 8 concurrent clients, end to end.
- noetl: `noetl run` with 1, 2 and 4 workers (concurrency 4 each) on an external PostgreSQL and
  NATS; each command is the shell tool running `true` (argv, no shell), submitted with
  POST /api/executions.
- peer: procrastinate (a PostgreSQL job queue) on the same PostgreSQL server (its own database),
  1, 2 and 4 worker processes with concurrency 4; task `run_true` spawns `true` and waits for it
  (the same work per job as noetl's), task `noop` does nothing in process (procrastinate's floor).
Figures per configuration, medians over --rounds bursts:
- commands/s: commands / (last completion - first submission);
- submit-to-completed p50/p95/p99, from the database's own timestamps (noetl: a command's
  created_at -> finished_at; procrastinate: its `deferred` -> `succeeded` events);
- unloaded: --single commands one after another, submit-to-completed p50.
Memory: RSS of supervisord, the server and each worker idle (ready, nothing submitted) and under
load (the peak while bursts run); of each procrastinate worker likewise.
Printed as tables and written to bench/results/throughput.json.

Run: `make bench` or `.venv/bin/python bench/bench_throughput.py [--commands N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import CpuMeter, per_command_ms  # noqa: E402
from bench.peer_queue import make_app  # noqa: E402
from tests.auth import RouteAuth  # noqa: E402
from tests.services import Postgres, nats_server, postgres_server  # noqa: E402
from tests.stack import Stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TOOL = {"kind": "shell", "command": ["true"]}
CONCURRENCY = 4  # per worker process, noetl's default
SUBMITTERS = 8
WORKER_COUNTS = (1, 2, 4)
WAIT = 300.0  # seconds any burst may take before the benchmark gives up
MB = 1024 * 1024


# --- measuring ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarise(first: float, last: float, latencies: list[float]) -> dict[str, float]:
    """One burst: commands/s and latency percentiles in ms."""
    return {
        "cps": len(latencies) / (last - first),
        "p50": percentile(latencies, 50) * 1000,
        "p95": percentile(latencies, 95) * 1000,
        "p99": percentile(latencies, 99) * 1000,
    }


def medians(bursts: list[dict[str, float]], single: list[float]) -> dict[str, float]:
    row = {key: round(statistics.median(b[key] for b in bursts), 1) for key in bursts[0]}
    row["single_p50"] = round(statistics.median(single) * 1000, 1)
    return row


def sized_bursts(
    burst: Callable[[int], dict[str, float]],
    meter: CpuMeter,
    sizes: list[int],
    rounds: int,
    single: list[float],
) -> dict[int, dict[str, Any]]:
    """Per burst size: the medians of ``rounds`` bursts and the CPU per command over all of them."""
    out: dict[int, dict[str, Any]] = {}
    for n in sizes:
        figures, used = [], dict.fromkeys(meter.groups, 0.0)
        for _ in range(rounds):
            figures.append(burst(n))
            for name, seconds in meter.used.items():
                used[name] += seconds
        out[n] = {"figures": medians(figures, single), "cpu_ms": per_command_ms(used, n * rounds)}
    return out


class RssPeaks:
    """Samples the RSS of named processes every 0.2 s in a thread; keeps each one's peak."""

    def __init__(self, procs: dict[str, psutil.Process]) -> None:
        self.procs = procs
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, float]:
        now = {}
        for name, proc in self.procs.items():
            try:
                now[name] = proc.memory_info().rss / MB
            except psutil.Error:
                continue
            self.peak[name] = max(self.peak.get(name, 0.0), now[name])
        return now

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.sample()

    @contextmanager
    def running(self) -> Iterator[None]:
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join(5)


async def submit_all(n: int, submit: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Call ``submit`` n times from SUBMITTERS concurrent clients; the results in no set order."""
    results: list[Any] = []
    left = iter(range(n))

    async def client() -> None:
        for _ in left:
            results.append(await submit())

    await asyncio.gather(*(client() for _ in range(SUBMITTERS)))
    return results


async def wait_for(query: str, args: list[Any], conn: asyncpg.Connection, expected: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if await conn.fetchval(query, *args) >= expected:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError(f"not all {expected} commands finished within {WAIT:g}s")


# --- noetl -------------------------------------------------------------------------------------

NOETL_DONE = (
    "SELECT count(*) FROM noetl.commands WHERE execution_id = ANY($1::uuid[]) AND status = 'completed'"
)
NOETL_TIMES = """
    SELECT extract(epoch FROM created_at)::float8 AS submitted,
           extract(epoch FROM finished_at)::float8 AS done
    FROM noetl.commands WHERE execution_id = ANY($1::uuid[])
"""


async def noetl_burst(url: str, dsn: str, n: int, meter: CpuMeter) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=url, timeout=60, auth=RouteAuth()) as client:

        async def submit() -> str:
            response = await client.post("/api/executions", json={"tool": TOOL, "timeout": 60})
            response.raise_for_status()
            return str(response.json()["execution_id"])

        conn = await asyncpg.connect(dsn)
        try:
            meter.start()
            ids = await submit_all(n, submit)
            await wait_for(NOETL_DONE, [ids], conn, n)
            meter.stop()
            rows = await conn.fetch(NOETL_TIMES, ids)
        finally:
            await conn.close()
    return summarise(
        min(r["submitted"] for r in rows),
        max(r["done"] for r in rows),
        [r["done"] - r["submitted"] for r in rows],
    )


async def noetl_single(url: str, dsn: str, count: int) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=60, auth=RouteAuth()) as client:
        conn = await asyncpg.connect(dsn)
        try:
            for _ in range(count):
                response = await client.post("/api/executions", json={"tool": TOOL, "timeout": 60})
                response.raise_for_status()
                ids = [str(response.json()["execution_id"])]
                await wait_for(NOETL_DONE, [ids], conn, 1)
                row = await conn.fetchrow(NOETL_TIMES, ids)
                latencies.append(row["done"] - row["submitted"])
        finally:
            await conn.close()
    return latencies


def noetl_ready(stack: Stack, workers: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, _ = stack.api("GET", "/api/ready")
            if status == 200:
                _, body = stack.api("GET", "/api/workers")
                if sum(1 for w in body["items"] if w["status"] == "online") >= workers:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"noetl not ready after {timeout}s:\n{stack.output()[-2000:]}")


def noetl_processes(stack: Stack) -> dict[str, psutil.Process]:
    assert stack.proc is not None
    launcher = psutil.Process(stack.proc.pid)
    (supervisord,) = [p for p in launcher.children() if "supervisord" in " ".join(p.cmdline())]
    procs = {"supervisord": supervisord}
    for row in stack.status():
        if row["name"] != "listener" and row["pid"]:
            procs[row["name"]] = psutil.Process(int(row["pid"]))
    return procs


def bench_noetl(
    pg: Postgres, nats_url: str, tmp: Path, workers: int, args: argparse.Namespace, services: tuple[int, int]
) -> dict[str, Any]:
    """``services``: the PIDs of the PostgreSQL postmaster and of NATS (their CPU counts too)."""
    database = f"noetl_w{workers}"
    pg.create_database(database)
    stack = Stack(
        home=tmp / database,
        env={
            **pg.env(database),
            "NATS_URL": nats_url,
            # A stream of its own per configuration: nothing left from another one.
            "NOETL_NATS_STREAM": f"BENCH_W{workers}",
            "NOETL_NATS_SUBJECT": f"bench.w{workers}",
            "NOETL_WORKERS": str(workers),
            "NOETL_WORKER_CONCURRENCY": str(CONCURRENCY),
            "NOETL_LOG_LEVEL": "warning",
        },
    )
    dsn = pg.dsn(database)
    try:
        stack.start()
        noetl_ready(stack, workers)
        procs = noetl_processes(stack)
        rss = RssPeaks(procs)
        workers_pids = [p.pid for name, p in procs.items() if name.startswith("worker_")]
        meter = CpuMeter.of(
            {
                "server": ([procs["server"].pid], "all"),
                "workers": (workers_pids, "own"),
                "tools": (workers_pids, "children"),
                "supervisord": ([procs["supervisord"].pid], "own"),
                "postgres": ([services[0]], "all"),
                "nats": ([services[1]], "all"),
            }
        )
        time.sleep(1)  # let start-up work (schema, registration) settle before the idle sample
        idle = rss.sample()
        rss.peak.clear()
        with rss.running():
            single = asyncio.run(noetl_single(stack.url, dsn, args.single))
            if args.statements:
                pg.sql("SELECT pg_stat_statements_reset()")
            sized = sized_bursts(
                lambda n: asyncio.run(noetl_burst(stack.url, dsn, n, meter)),
                meter,
                args.commands,
                args.rounds,
                single,
            )
            statements = (
                asyncio.run(statements_per_command(pg, database, sum(args.commands) * args.rounds))
                if args.statements
                else None
            )
            growth = soak(stack.url, dsn, args.soak, rss) if args.soak else None
        assert stack.stop() == 0, stack.output()[-2000:]
    finally:
        stack.stop()
    return {
        "sizes": sized,
        "rss_idle": idle,
        "rss_load": rss.peak,
        "soak": growth,
        "statements": statements,
    }


async def statements_per_command(pg: Postgres, database: str, commands: int) -> dict[str, Any]:
    """PostgreSQL statements per command over the bursts (pg_stat_statements), the busiest first."""
    conn = await asyncpg.connect(pg.dsn())
    try:
        rows = await conn.fetch(
            """
            SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
            ORDER BY calls DESC
            """,
            database,
        )
    finally:
        await conn.close()
    return {
        "per_command": round(sum(r["calls"] for r in rows) / commands, 2),
        "top": [(round(r["calls"] / commands, 2), r["query"]) for r in rows[:15]],
    }


SOAK_BURST = 2000


def soak(url: str, dsn: str, total: int, rss: RssPeaks) -> dict[str, Any]:
    """``total`` commands in bursts of SOAK_BURST; each process's RSS after every burst (MB)."""
    samples: list[dict[str, float]] = []
    meter = CpuMeter({})
    started = time.monotonic()
    for _ in range(max(1, total // SOAK_BURST)):
        asyncio.run(noetl_burst(url, dsn, SOAK_BURST, meter))
        samples.append({k: round(v, 1) for k, v in rss.sample().items()})
        # Progress, so that a soak stopped early still shows how far memory went.
        done = SOAK_BURST * len(samples)
        print(f"soak: {done} commands, RSS MB {samples[-1]}", file=sys.stderr, flush=True)
    # Growth: the last sample against the one after the first tenth (allocators and caches warm).
    warm = samples[max(0, len(samples) // 10 - 1)]
    return {
        "commands": SOAK_BURST * len(samples),
        "seconds": round(time.monotonic() - started, 1),
        "after_warm_up": warm,
        "last": samples[-1],
        "growth_mb": {k: round(samples[-1][k] - warm[k], 1) for k in warm},
        "samples": samples,
    }


# --- procrastinate -----------------------------------------------------------------------------

PEER_DONE = "SELECT count(*) FROM procrastinate_jobs WHERE id = ANY($1::bigint[]) AND status = 'succeeded'"
PEER_TIMES = """
    SELECT extract(epoch FROM d.at)::float8 AS submitted, extract(epoch FROM s.at)::float8 AS done
    FROM procrastinate_jobs j
    JOIN procrastinate_events d ON d.job_id = j.id AND d.type = 'deferred'
    JOIN procrastinate_events s ON s.job_id = j.id AND s.type = 'succeeded'
    WHERE j.id = ANY($1::bigint[])
"""


async def peer_burst(dsn: str, task: str, n: int, meter: CpuMeter) -> dict[str, float]:
    app = make_app(dsn)
    async with app.open_async():
        conn = await asyncpg.connect(dsn)
        try:
            meter.start()
            ids = await submit_all(n, app.tasks[task].defer_async)
            await wait_for(PEER_DONE, [ids], conn, n)
            meter.stop()
            rows = await conn.fetch(PEER_TIMES, ids)
        finally:
            await conn.close()
    return summarise(
        min(r["submitted"] for r in rows),
        max(r["done"] for r in rows),
        [r["done"] - r["submitted"] for r in rows],
    )


async def peer_single(dsn: str, task: str, count: int) -> list[float]:
    latencies = []
    app = make_app(dsn)
    async with app.open_async():
        conn = await asyncpg.connect(dsn)
        try:
            for _ in range(count):
                ids = [await app.tasks[task].defer_async()]
                await wait_for(PEER_DONE, [ids], conn, 1)
                row = await conn.fetchrow(PEER_TIMES, ids)
                latencies.append(row["done"] - row["submitted"])
        finally:
            await conn.close()
    return latencies


async def peer_schema(dsn: str) -> None:
    app = make_app(dsn)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def peer_workers_registered(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM procrastinate_workers"))
    finally:
        await conn.close()


def bench_peer(
    pg: Postgres, tmp: Path, workers: int, args: argparse.Namespace, services: tuple[int, int]
) -> dict[str, Any]:
    database = f"peer_w{workers}"
    pg.create_database(database)
    dsn = pg.dsn(database)
    asyncio.run(peer_schema(dsn))
    log = (tmp / f"{database}.log").open("ab")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "peer_queue.py"),
                "--dsn",
                dsn,
                "--concurrency",
                str(CONCURRENCY),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(workers)
    ]
    log.close()
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(peer_workers_registered(dsn)) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(
                    f"procrastinate workers did not start: {(tmp / f'{database}.log').read_text()}"
                )
            time.sleep(0.1)
        rss = RssPeaks({f"worker_{i:02d}": psutil.Process(p.pid) for i, p in enumerate(procs)})
        pids = [p.pid for p in procs]
        meter = CpuMeter.of(
            {
                "workers": (pids, "own"),
                "tools": (pids, "children"),
                "postgres": ([services[0]], "all"),
                "nats": ([services[1]], "all"),
            }
        )
        time.sleep(1)
        idle = rss.sample()
        rss.peak.clear()
        figures = {}
        with rss.running():
            for task in ("run_true", "noop"):
                single = asyncio.run(peer_single(dsn, task, args.single))
                figures[task] = sized_bursts(
                    lambda n, task=task: asyncio.run(peer_burst(dsn, task, n, meter)),  # type: ignore[misc]
                    meter,
                    args.commands,
                    args.rounds,
                    single,
                )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    return {"figures": figures, "rss_idle": idle, "rss_load": rss.peak}


# --- report ------------------------------------------------------------------------------------


def memory_row(rss: dict[str, float]) -> dict[str, float]:
    """supervisord, server, and the mean and sum over the workers, in MB."""
    workers = [v for k, v in rss.items() if k.startswith("worker_")]
    row = {k: round(v, 1) for k, v in rss.items() if not k.startswith("worker_")}
    row["worker (each, mean)"] = round(statistics.mean(workers), 1)
    row["workers (sum)"] = round(sum(workers), 1)
    return row


def report(results: dict[str, Any]) -> None:
    cols = ("cps", "p50", "p95", "p99", "single_p50")
    print(
        f"{'configuration (x true, medians)':<52}"
        + "".join(f"{c:>11}" for c in ("cmd/s", "p50 ms", "p95 ms", "p99 ms", "1-by-1 ms"))
    )
    for name, row in results["rows"].items():
        print(f"{name:<52}" + "".join(f"{row[c]:>11.1f}" for c in cols))
    print()
    print("CPU ms per command (every process but the benchmark's client)")
    for name, row in results["cpu_ms"].items():
        print(f"  {name:<50} " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    print()
    for name, ratio in results["ratios"].items():
        print(f"{name:<72} {ratio:>8.2f}x")
    print()
    print(f"{'RSS MB (idle / under load)':<42}")
    for name, mem in results["memory_mb"].items():
        parts = ", ".join(f"{k} {mem['idle'][k]:.0f}/{mem['load'].get(k, 0):.0f}" for k in mem["idle"])
        print(f"  {name:<20} {parts}")
    for name, counted in results["statements"].items():
        print(f"PostgreSQL statements per command, {name}: {counted['per_command']}")
        for calls, query in counted["top"]:
            print(f"  {calls:6.2f}  {query}")
    for name, run in results["soak"].items():
        print(f"soak {name}: {run['commands']} commands in {run['seconds']} s; RSS MB after warm-up -> last:")
        for k, v in run["after_warm_up"].items():
            print(f"  {k:<12} {v:6.1f} -> {run['last'][k]:6.1f} ({run['growth_mb'][k]:+.1f})")


def durable(pg: Postgres) -> None:
    """fsync and synchronous_commit on, as production runs (the test PostgreSQL has fsync off)."""
    pg.sql("ALTER SYSTEM SET fsync = on")
    pg.sql("ALTER SYSTEM SET synchronous_commit = on")
    pg.sql("SELECT pg_reload_conf()")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--commands", type=int, nargs="+", default=[200], help="commands per burst, one or more sizes (200)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="bursts per size and configuration (default 3)")
    parser.add_argument("--single", type=int, default=20, help="commands one after another (default 20)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=list(WORKER_COUNTS), help="worker counts (default 1 2 4)"
    )
    parser.add_argument(
        "--durable", action="store_true", help="PostgreSQL with fsync=on and synchronous_commit=on"
    )
    parser.add_argument("--no-peer", action="store_true", help="noetl only (profiling)")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="count PostgreSQL statements per command (pg_stat_statements)",
    )
    parser.add_argument(
        "--soak", type=int, default=0, help=f"then N more commands in bursts of {SOAK_BURST}: RSS growth"
    )
    args = parser.parse_args()
    rows: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    memory: dict[str, dict[str, dict[str, float]]] = {}
    ratios: dict[str, float] = {}
    soaks: dict[str, Any] = {}
    statements: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="noetl-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        with postgres_server(tmp / "pg") as pg, nats_server(tmp / "nats") as nats:
            if args.durable:
                durable(pg)
            if args.statements:
                pg.sql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
                pg.stop()
                pg.start()
                pg.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            assert pg.proc is not None and nats.proc is not None
            services = (pg.proc.pid, nats.proc.pid)
            for workers in args.workers:
                ours = bench_noetl(pg, nats.url, tmp, workers, args, services)
                peer = None if args.no_peer else bench_peer(pg, tmp, workers, args, services)
                for n in args.commands:
                    noetl_name = f"noetl, {workers} worker(s) x {CONCURRENCY}, {n} burst"
                    rows[noetl_name] = ours["sizes"][n]["figures"]
                    cpu[noetl_name] = ours["sizes"][n]["cpu_ms"]
                    if peer is None:
                        continue
                    for task in ("run_true", "noop"):
                        name = f"procrastinate, {workers} x {CONCURRENCY}, {task}, {n} burst"
                        rows[name] = peer["figures"][task][n]["figures"]
                        cpu[name] = peer["figures"][task][n]["cpu_ms"]
                    theirs = peer["figures"]["run_true"][n]["figures"]
                    key = f"{workers} worker(s), {n} burst"
                    ratios[f"cmd/s noetl / procrastinate run_true, {key}"] = round(
                        rows[noetl_name]["cps"] / theirs["cps"], 2
                    )
                    ratios[f"p50 noetl / procrastinate run_true, {key}"] = round(
                        rows[noetl_name]["p50"] / theirs["p50"], 2
                    )
                    ratios[f"1-by-1 p50 noetl / procrastinate run_true, {key}"] = round(
                        rows[noetl_name]["single_p50"] / theirs["single_p50"], 2
                    )
                memory[f"noetl w{workers}"] = {
                    "idle": memory_row(ours["rss_idle"]),
                    "load": memory_row(ours["rss_load"]),
                }
                if ours["soak"] is not None:
                    soaks[f"noetl w{workers}"] = ours["soak"]
                if ours["statements"] is not None:
                    statements[f"noetl w{workers}"] = ours["statements"]
                if peer is not None:
                    memory[f"procrastinate w{workers}"] = {
                        "idle": memory_row(peer["rss_idle"]),
                        "load": memory_row(peer["rss_load"]),
                    }
    results = {
        "commands": args.commands,
        "rounds": args.rounds,
        "single": args.single,
        "concurrency": CONCURRENCY,
        "durable": args.durable,
        "rows": rows,
        "cpu_ms": cpu,
        "ratios": ratios,
        "memory_mb": memory,
        "soak": soaks,
        "statements": statements,
    }
    report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "throughput-durable.json" if args.durable else "throughput.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
