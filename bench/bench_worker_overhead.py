"""Worker overhead: `.venv/bin/python bench/bench_worker_overhead.py [--commands N] [--rounds R]`.

Pre-submits N no-op shell commands and times how long 2 workers (concurrency 4 each) take to
complete them all, against a baseline measured in the same run on the same server: the same
protocol (claim with started, the same tool, completed) driven directly from this process with the
same 8-way parallelism and no NATS. The ratio is the worker's own overhead (fetching, acks,
leases, process management). Prints medians over the rounds; asserts nothing. Not part of
`make bench` (bench/run_all.py): it isolates the worker, where bench_throughput.py measures the whole.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from noetl.tools.registry import ToolContext, run_tool
from noetl.worker.api import ServerApi
from tests.auth import WORKER_TOKEN
from tests.services import nats_server, postgres_server
from tests.worker.harness import Cluster, clean_env

TOOL = {"kind": "shell", "command": ["true"]}
PARALLEL = 8  # 2 workers x concurrency 4


def submit(cluster: Cluster, n: int) -> list[str]:
    return [cluster.submit(TOOL)[1] for _ in range(n)]


async def direct(url: str, command_ids: list[str]) -> None:
    api = ServerApi(url, WORKER_TOKEN)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for cid in command_ids:
        queue.put_nowait(cid)

    async def lane() -> None:
        while not queue.empty():
            cid = queue.get_nowait()
            claim = await api.claim(cid, "bench", 30, until=None)
            assert claim is not None
            if not claim.started:  # recorded with the claim, as for the workers
                await api.event(claim, "bench", "started", {}, 0, until=None)
            outcome = await run_tool(claim.tool, ToolContext(30, dict(os.environ)))
            await api.event(claim, "bench", "completed", outcome.payload(), 1, until=None)

    await asyncio.gather(*(lane() for _ in range(PARALLEL)))
    await api.close()


async def purge(nats_url: str) -> None:
    import nats

    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().purge_stream("NOETL_COMMANDS")
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="noetl-bench-"))
    os.chmod(tmp, 0o755)
    direct_rates, worker_rates = [], []
    with postgres_server(tmp / "pg") as pg, nats_server(tmp / "nats") as nats:
        pg.create_database("bench")
        cluster = Cluster(
            tmp=tmp, env=clean_env(**pg.env("bench"), NATS_URL=nats.url, NOETL_LOG_LEVEL="warning")
        )
        try:
            cluster.start_server()
            for r in range(args.rounds):
                ids = submit(cluster, args.commands)
                started = time.perf_counter()
                asyncio.run(direct(cluster.url, ids))
                direct_rates.append(args.commands / (time.perf_counter() - started))
                # Nobody consumed the direct round's notices: drop them so the workers start clean.
                asyncio.run(purge(nats.url))

                submit(cluster, args.commands)
                names = [f"worker_{r}{i}" for i in range(2)]
                for name in names:
                    cluster.start_worker(
                        name, NOETL_WORKER_CONCURRENCY=str(PARALLEL // 2), NOETL_LOG_LEVEL="info"
                    )
                for name in names:
                    cluster.wait_worker_ready(name)
                started = time.perf_counter()
                cluster.wait_count("COMPLETED", 2 * args.commands * (r + 1), timeout=600)
                worker_rates.append(args.commands / (time.perf_counter() - started))
                for name in names:
                    proc = cluster.workers.pop(name)
                    proc.terminate()
                    proc.wait(30)
        finally:
            cluster.stop_all()
    d, w = statistics.median(direct_rates), statistics.median(worker_rates)
    print(f"direct protocol, {PARALLEL} lanes: median {d:.1f} commands/s over {args.rounds} rounds")
    print(f"2 workers x {PARALLEL // 2}:         median {w:.1f} commands/s over {args.rounds} rounds")
    print(f"workers / direct: {w / d:.2f}")


if __name__ == "__main__":
    main()
