"""Python steps: `.venv/bin/python bench/bench_python.py [--single N] [--rounds R] [--burst N]`.

On a real PostgreSQL (fsync=off, as in the tests), NATS, server and two workers (concurrency 4),
with python commands forked from the workers' warm templates, in one run:

- one at a time: a no-op python command (`result = 1`) and a shell `true`, alternately submitted
  (`POST /api/executions`) and polled every 5 ms until COMPLETED: p50 of each and their ratio;
- a linear playbook of 10 and of 1 no-op python steps, `POST /api/execute` -> COMPLETED seen by the
  client (polled every 5 ms), against DBOS (`dbos`, a dev dependency) on the same PostgreSQL server:
  a workflow of 10 and of 1 no-op `@DBOS.step()`s, called in its own process (DBOS runs steps in
  the caller's process; each step's checkpoint is written to PostgreSQL). The cost of each extra
  step is (10 steps - 1 step) / 9, for both;
- where a step's time goes, from the database's own timestamps of steps 2-10 (medians):
  previous completion -> claim (the completion's transaction with the transition and the next
  command, commit, JetStream publish, the worker's fetch and claim call), claim -> `started`
  event, `started` -> completion (the tool's run and the report); the tool's run alone is the
  same no-op run here through `run_tool` (warm template, no server), next to the same runner in
  a fresh interpreter (how the python tool ran before the templates) and a shell `true`;
- a burst: N python no-ops submitted by 8 client threads, first submission -> all COMPLETED, in
  commands/s, against the same burst of shell `true`;
- CPU per extra step, by process (server, workers, their tools, PostgreSQL, NATS; /proc): the
  CPU of --cpu-rounds 10-step runs minus that of as many 1-step runs, over 9 steps a run; these
  runs are polled every 50 ms (the 5 ms polling of the latency runs costs the server more than a
  step does); "engine" is every process but the tools;
- the workers' and their templates' memory (RSS), idle.

Writes bench/results/python.json; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import CpuMeter  # noqa: E402
from noetl.protocol.words import EXECUTION_FINISHED  # noqa: E402
from noetl.tools.base import run_process  # noqa: E402
from noetl.tools.registry import ToolContext, run_tool  # noqa: E402
from noetl.tools.warm_mark import is_template  # noqa: E402
from tests.server.conftest import pg_fetch  # noqa: E402
from tests.services import nats_server, postgres_server  # noqa: E402
from tests.worker.harness import Cluster, clean_env  # noqa: E402

RESULTS = ROOT / "bench" / "results"
POLL = 0.005
CPU_POLL = 0.05  # the CPU runs' polling: rare enough to cost the server little
PYTHON = {"kind": "python", "code": "result = 1"}
SHELL = {"kind": "shell", "command": "true"}
CLIENTS = 8
WORKERS = ("worker_00", "worker_01")


def linear(steps: int) -> str:
    names = ["start", *(f"s{i}" for i in range(1, steps))]
    body = "".join(
        f"  - step: {name}\n    tool: {{kind: python, code: 'result = 1'}}\n"
        + (f"    next: {names[i + 1]}\n" if i + 1 < steps else "")
        for i, name in enumerate(names)
    )
    head = (
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        f"metadata: {{name: linear{steps}, path: bench/linear{steps}}}\n"
    )
    return f"{head}workflow:\n{body}"


_sessions: dict[str, httpx.Client] = {}


def session(cluster: Cluster) -> httpx.Client:
    """One kept-alive connection for the one-at-a-time client, as a real client keeps (the
    harness opens a connection per call, which costs both sides a few ms per poll)."""
    if cluster.url not in _sessions:
        _sessions[cluster.url] = httpx.Client(base_url=cluster.url, auth=cluster.auth(), timeout=15)
    return _sessions[cluster.url]


def call(cluster: Cluster, method: str, path: str, body: Any = None) -> Any:
    response = session(cluster).request(method, path, json=body)
    assert response.status_code < 300, response.text
    return response.json()


def wait_ended(cluster: Cluster, execution_id: str, poll: float = POLL) -> None:
    while True:
        view = call(cluster, "GET", f"/api/executions/{execution_id}")
        if view["status"] in EXECUTION_FINISHED:
            assert view["status"] == "COMPLETED", view
            return
        time.sleep(poll)


def one(cluster: Cluster, tool: dict[str, Any]) -> float:
    start = time.perf_counter()
    body = call(cluster, "POST", "/api/executions", {"tool": tool, "timeout": 60, "max_attempts": 3})
    wait_ended(cluster, body["execution_id"])
    return time.perf_counter() - start


def playbook(cluster: Cluster, steps: int, poll: float = POLL) -> tuple[float, str]:
    start = time.perf_counter()
    body = call(cluster, "POST", "/api/execute", {"path": f"bench/linear{steps}"})
    wait_ended(cluster, body["execution_id"], poll)
    return time.perf_counter() - start, body["execution_id"]


def cpu_per_step(cluster: Cluster, services: tuple[int, int], rounds: int) -> dict[str, float]:
    """CPU ms per extra step of the linear playbook, by process group (see the module's help)."""
    workers = [cluster.workers[name].pid for name in WORKERS]
    assert cluster.server is not None
    meter = CpuMeter.of(
        {
            "server": ([cluster.server.pid], "all"),
            "workers": (workers, "own"),
            "tools": (workers, "children"),
            "postgres": ([services[0]], "all"),
            "nats": ([services[1]], "all"),
        }
    )
    used = {}
    for steps in (10, 1):
        meter.start()
        for _ in range(rounds):
            playbook(cluster, steps, poll=CPU_POLL)
        used[steps] = meter.stop()
    per_step = {name: round((used[10][name] - used[1][name]) * 1000 / (9 * rounds), 2) for name in used[10]}
    per_step["engine"] = round(sum(v for name, v in per_step.items() if name != "tools"), 2)
    return per_step


def finished(cluster: Cluster, status: str) -> int:
    return int(cluster.api("GET", f"/api/executions?status={status}&limit=1")[1]["total"])


def burst(cluster: Cluster, tool: dict[str, Any], commands: int) -> float:
    """Seconds from the first submission to every one COMPLETED (counted every 20 ms)."""
    done_before = finished(cluster, "COMPLETED")
    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda _: cluster.submit(tool), range(commands)))
    while finished(cluster, "COMPLETED") < done_before + commands:
        time.sleep(0.02)
    took = time.perf_counter() - start
    assert finished(cluster, "FAILED") == 0
    return took


def breakdown(cluster: Cluster, execution_ids: list[str]) -> dict[str, float]:
    """Medians (ms) over steps 2.. of the given linear executions, from database timestamps."""
    rows = pg_fetch(
        cluster.env,
        """
        SELECT c.execution_id::text AS execution_id, c.created_at, c.claimed_at, c.finished_at,
               (SELECT min(e.created_at) FROM noetl.events e
                 WHERE e.command_id = c.command_id AND e.type = 'started') AS started_at
        FROM noetl.commands c WHERE c.execution_id = ANY($1::uuid[])
        ORDER BY c.execution_id, c.created_at
        """,
        execution_ids,
    )
    parts: dict[str, list[float]] = {"dispatch": [], "claim_to_started": [], "started_to_completion": []}
    previous: dict[str, Any] = {}
    for row in rows:
        before = previous.get(row["execution_id"])
        previous[row["execution_id"]] = row
        if before is None:
            continue  # the first step starts from the execute call, not from a completion
        parts["dispatch"].append((row["claimed_at"] - before["finished_at"]).total_seconds())
        parts["claim_to_started"].append((row["started_at"] - row["claimed_at"]).total_seconds())
        parts["started_to_completion"].append((row["finished_at"] - row["started_at"]).total_seconds())
    return {name: round(statistics.median(values) * 1000, 2) for name, values in parts.items()}


def tool_alone(n: int) -> dict[str, float]:
    """p50 ms of the no-op tools run here, without a server: python from its warm template, the
    same runner in a fresh interpreter (how the python tool ran before the templates), shell."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    source = (ROOT / "noetl" / "tools" / "python_runner.py").read_text()
    request = json.dumps({"code": "result = 1"}).encode()

    async def fresh() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            done = await run_process(
                [sys.executable, "-c", source, f"{tmp}/answer.json"],
                timeout=30,
                env=env,
                cwd=tmp,
                stdin=request,
            )
            assert done.exit_code == 0, done

    async def times() -> dict[str, list[float]]:
        await run_tool(PYTHON, ToolContext(30, env))  # the template starts
        runs: dict[str, Any] = {
            "python": lambda: run_tool(PYTHON, ToolContext(30, env)),
            "python_fresh_interpreter": fresh,
            "shell": lambda: run_tool(SHELL, ToolContext(30, env)),
        }
        out: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(n):
            for name, run in runs.items():
                start = time.perf_counter()
                await run()
                out[name].append(time.perf_counter() - start)
        return out

    return {name: ms(values) for name, values in asyncio.run(times()).items()}


def memory(cluster: Cluster) -> dict[str, float]:
    import psutil

    mb = 2**20
    workers, templates = [], []
    for name in WORKERS:
        proc = psutil.Process(cluster.workers[name].pid)
        workers.append(proc.memory_info().rss / mb)
        templates += [c.memory_info().rss / mb for c in proc.children() if is_template(c.cmdline())]
    return {
        "worker_mb_each": round(statistics.mean(workers), 1),
        "template_mb_each": round(statistics.mean(templates), 1) if templates else 0.0,
        "templates": len(templates),
    }


# --- DBOS, in a process of its own ---------------------------------------------------------------


def dbos_side(url: str, rounds: int) -> dict[str, Any]:
    from dbos import DBOS

    DBOS(config={"name": "noetl-bench", "system_database_url": url, "log_level": "WARNING"})

    @DBOS.step()
    def noop() -> int:
        return 1

    @DBOS.workflow()
    def flow(steps: int) -> int:
        return sum(noop() for _ in range(steps))

    DBOS.launch()
    try:
        for _ in range(5):
            flow(10)  # warm: connections open, statements prepared
        ten, single = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            flow(10)
            ten.append(time.perf_counter() - start)
            start = time.perf_counter()
            flow(1)
            single.append(time.perf_counter() - start)
    finally:
        DBOS.destroy()
    return {"ten": ten, "one": single}


def run_dbos(url: str, rounds: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--dbos", url, "--rounds", str(rounds)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the DBOS side failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 2)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--single", type=int, default=30, help="commands of each kind one at a time (30)")
    parser.add_argument("--rounds", type=int, default=15, help="runs of each playbook and workflow (15)")
    parser.add_argument("--burst", type=int, default=200, help="commands in a burst (200)")
    parser.add_argument("--bursts", type=int, default=3, help="bursts of each kind (3)")
    parser.add_argument(
        "--cpu-rounds", type=int, default=10, help="runs of each playbook for CPU per step (10)"
    )
    parser.add_argument("--dbos", metavar="URL", help=argparse.SUPPRESS)  # the DBOS side's own process
    args = parser.parse_args()
    if args.dbos:
        print(json.dumps(dbos_side(args.dbos, args.rounds)))
        return 0
    with tempfile.TemporaryDirectory(prefix="noetl-bench-py-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        with postgres_server(root / "pg") as pg, nats_server(root / "nats") as nats:
            pg.create_database("bench")
            pg.create_database("dbos_bench")
            cluster = Cluster(
                tmp=root, env=clean_env(**pg.env("bench"), NATS_URL=nats.url, NOETL_LOG_LEVEL="info")
            )
            try:
                cluster.start_server()
                for name in WORKERS:
                    cluster.start_worker(name)
                for name in WORKERS:
                    cluster.wait_worker_ready(name)
                for steps in (1, 10):
                    status, body = cluster.api("POST", "/api/catalog/register", {"content": linear(steps)})
                    assert status == 200, body
                for _ in range(3):  # warm: templates, connections, the parsed playbooks
                    one(cluster, PYTHON)
                    one(cluster, SHELL)
                    playbook(cluster, 10)
                    playbook(cluster, 1)
                idle = memory(cluster)
                python_one, shell_one = [], []
                for _ in range(args.single):
                    python_one.append(one(cluster, PYTHON))
                    shell_one.append(one(cluster, SHELL))
                ten, single, executions = [], [], []
                for _ in range(args.rounds):
                    took, execution_id = playbook(cluster, 10)
                    ten.append(took)
                    executions.append(execution_id)
                    single.append(playbook(cluster, 1)[0])
                parts = breakdown(cluster, executions)
                assert pg.proc is not None and nats.proc is not None
                cpu = cpu_per_step(cluster, (pg.proc.pid, nats.proc.pid), args.cpu_rounds)
                python_burst, shell_burst = [], []
                for _ in range(args.bursts):
                    python_burst.append(burst(cluster, PYTHON, args.burst))
                    shell_burst.append(burst(cluster, SHELL, args.burst))
            finally:
                cluster.stop_all()
            dbos = run_dbos(pg.dsn("dbos_bench"), args.rounds)
    alone = tool_alone(args.single)
    noetl_ten, noetl_one = ms(ten), ms(single)
    dbos_ten, dbos_one = ms(dbos["ten"]), ms(dbos["one"])
    py_rate = args.burst / statistics.median(python_burst)
    sh_rate = args.burst / statistics.median(shell_burst)
    result = {
        "single": {
            "python_p50_ms": ms(python_one),
            "shell_p50_ms": ms(shell_one),
            "ratio": round(statistics.median(python_one) / statistics.median(shell_one), 2),
            "n": args.single,
        },
        "playbook": {
            "rounds": args.rounds,
            "noetl_10_ms": noetl_ten,
            "noetl_1_ms": noetl_one,
            "noetl_per_extra_step_ms": round((noetl_ten - noetl_one) / 9, 2),
            "dbos_10_ms": dbos_ten,
            "dbos_1_ms": dbos_one,
            "dbos_per_extra_step_ms": round((dbos_ten - dbos_one) / 9, 2),
            "ratio_10": round(noetl_ten / dbos_ten, 2),
            "step_breakdown_ms": {**parts, "tool_run_alone": alone["python"]},
            "cpu_ms_per_extra_step": cpu,
        },
        "burst": {
            "commands": args.burst,
            "bursts": args.bursts,
            "python_per_s": round(py_rate, 1),
            "shell_per_s": round(sh_rate, 1),
            "ratio": round(py_rate / sh_rate, 2),
        },
        "tool_alone_p50_ms": alone,
        "memory_idle": idle,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "python.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
