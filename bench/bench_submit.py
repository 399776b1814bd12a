"""The submission path alone, A/B: POST /api/executions -> committed -> notice acknowledged by JetStream.

One PostgreSQL and one NATS; one `python -m noetl.server` per source tree given with --tree (default:
this checkout), each on its own database and stream, no workers. Rounds alternate between the trees
(A, B, A, B, ...), so a machine whose load changes during the run weighs on each alike. A round is a
burst of --submissions from --clients concurrent HTTP clients (one connection each), timed from the
first request to the last notice marked published in the database.
Per tree, medians over the rounds: submissions/s, and CPU ms per submission of the server, of
PostgreSQL (every backend: the other tree's idle server counts a little too, the same for both) and
of NATS; with --statements, PostgreSQL statements per submission (pg_stat_statements).

Compare main with a branch: `git archive main | tar -x -C /tmp/main` then
`.venv/bin/python bench/bench_submit.py --tree /tmp/main --tree .`
Written to bench/results/submit.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import CpuMeter, per_command_ms  # noqa: E402
from tests.auth import TOKEN_ENV, RouteAuth  # noqa: E402
from tests.services import Postgres, free_port, nats_server, postgres_server, stop_pid, wait_until  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TOOL = {"kind": "shell", "command": ["true"]}
UNPUBLISHED = "SELECT count(*) FROM noetl.commands WHERE published_at IS NULL"


class Tree:
    """One server, started from the source tree at ``path``."""

    def __init__(self, index: int, path: Path, pg: Postgres, nats_url: str, tmp: Path) -> None:
        self.name = f"{chr(ord('A') + index)} {path}"
        self.database = f"submit_{index}"
        pg.create_database(self.database)
        self.dsn = pg.dsn(self.database)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "POSTGRES_"))},
            **pg.env(self.database),
            **TOKEN_ENV,
            "PYTHONPATH": str(path),
            "NATS_URL": nats_url,
            "NOETL_NATS_STREAM": f"SUBMIT_{index}",
            "NOETL_NATS_SUBJECT": f"submit.{index}",
            "NOETL_HOST": "127.0.0.1",
            "NOETL_PORT": str(port),
            "NOETL_LOG_LEVEL": "warning",
        }
        self.log = (tmp / f"server-{index}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "noetl.server"], env=env, stdout=self.log, stderr=self.log, cwd=path
        )
        self.rounds: list[dict[str, float]] = []

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"server {self.name} exited {self.proc.returncode}")
        try:
            return httpx.get(self.url + "/api/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        stop_pid(self.proc, signal.SIGTERM)
        self.log.close()


async def burst(tree: Tree, n: int, clients: int, meter: CpuMeter) -> dict[str, float]:
    left = iter(range(n))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=tree.url, timeout=60, auth=RouteAuth()) as api:
            for _ in left:
                response = await api.post("/api/executions", json={"tool": TOOL, "timeout": 60})
                assert response.status_code == 201, response.text

    conn = await asyncpg.connect(tree.dsn)
    try:
        meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        answered = time.perf_counter()
        while await conn.fetchval(UNPUBLISHED):
            await asyncio.sleep(0.01)
        published = time.perf_counter()
        meter.stop()
    finally:
        await conn.close()
    cpu = per_command_ms(meter.used, n)
    return {"answered_per_s": n / (answered - started), "published_per_s": n / (published - started), **cpu}


async def statements(pg: Postgres, tree: Tree, submissions: int) -> dict[str, Any]:
    conn = await asyncpg.connect(pg.dsn())
    try:
        rows = await conn.fetch(
            """
            SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 80) AS query FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY calls DESC
            """,
            tree.database,
        )
    finally:
        await conn.close()
    return {
        "per_submission": round(sum(r["calls"] for r in rows) / submissions, 3),
        "top": [(round(r["calls"] / submissions, 3), r["query"]) for r in rows[:6]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tree", action="append", type=Path, help="a source tree to run (repeat; default: this one)"
    )
    parser.add_argument("--submissions", type=int, default=1000, help="submissions per burst (default 1000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="bursts per tree, alternating (default 5)")
    parser.add_argument(
        "--durable", action="store_true", help="PostgreSQL with fsync and synchronous_commit on"
    )
    parser.add_argument(
        "--statements", action="store_true", help="statements per submission (pg_stat_statements)"
    )
    args = parser.parse_args()
    paths = [p.resolve() for p in (args.tree or [ROOT])]
    with tempfile.TemporaryDirectory(prefix="noetl-bench-submit-") as tmp_dir:
        tmp = Path(tmp_dir)
        with postgres_server(tmp / "pg") as pg, nats_server(tmp / "nats") as nats:
            if args.durable:
                pg.sql("ALTER SYSTEM SET fsync = on")
                pg.sql("ALTER SYSTEM SET synchronous_commit = on")
            if args.statements:
                pg.sql("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            pg.stop()
            pg.start()
            if args.statements:
                pg.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            assert pg.proc is not None and nats.proc is not None
            trees = [Tree(i, path, pg, nats.url, tmp) for i, path in enumerate(paths)]
            try:
                for tree in trees:
                    wait_until(tree.ready, 60, f"server {tree.name}")
                    asyncio.run(burst(tree, 100, args.clients, CpuMeter({})))  # warm up
                if args.statements:
                    pg.sql("SELECT pg_stat_statements_reset()")
                for _ in range(args.rounds):
                    for tree in trees:
                        meter = CpuMeter.of(
                            {
                                "server": ([tree.proc.pid], "all"),
                                "postgres": ([pg.proc.pid], "all"),
                                "nats": ([nats.proc.pid], "all"),
                            }
                        )
                        tree.rounds.append(asyncio.run(burst(tree, args.submissions, args.clients, meter)))
                counted = {
                    tree.name: asyncio.run(statements(pg, tree, args.submissions * args.rounds))
                    for tree in trees
                    if args.statements
                }
            finally:
                for tree in trees:
                    tree.stop()
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "trees": {}}
    print(f"{args.rounds} bursts of {args.submissions} submissions from {args.clients} clients, medians")
    for tree in trees:
        row = {key: round(statistics.median(r[key] for r in tree.rounds), 2) for key in tree.rounds[0]}
        results["trees"][tree.name] = {
            "medians": row,
            "rounds": tree.rounds,
            "statements": counted.get(tree.name),
        }
        cpu = ", ".join(f"{k} {row[k]:.2f}" for k in row if not k.endswith("_per_s"))
        print(
            f"{tree.name}\n  answered {row['answered_per_s']:.0f}/s, published {row['published_per_s']:.0f}/s"
        )
        print(f"  CPU ms per submission: {cpu}")
        if tree.name in counted:
            print(f"  statements per submission: {counted[tree.name]['per_submission']}")
            for calls, query in counted[tree.name]["top"]:
                print(f"    {calls:6.3f}  {query}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "submit.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
