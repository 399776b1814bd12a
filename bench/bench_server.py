"""API server benchmarks: claim latency and submissions per second on real PostgreSQL + NATS.

One run starts PostgreSQL and NATS (tests/services.py) and `python -m noetl.server`, then measures,
against baselines taken in the same run on the same server:
- GET /api/health (the HTTP + uvicorn + FastAPI floor) and the claim transaction run directly on
  asyncpg (the database floor, no HTTP);
- POST /api/commands/{id}/claim: latency median / p95, one claim at a time, then 16 at once;
- POST .../events completed: latency median / p95;
- POST /api/executions: submissions per second, one client, then 16 concurrent clients;
- submit -> notice delivered by a JetStream pull consumer: latency median / p95.
Results are printed and written to bench/results/server.json.

Run: `.venv/bin/python bench/bench_server.py [--n 400]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noetl.server.db import connect_once  # noqa: E402
from noetl.server.queries import commands as command_queries  # noqa: E402
from noetl.settings import load_settings  # noqa: E402
from tests.auth import TOKEN_ENV, RouteAuth  # noqa: E402
from tests.services import free_port, nats_server, postgres_server, stop_pid, wait_until  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TOOL = {"kind": "shell", "command": "true"}
CONCURRENCY = 16


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "n": len(ordered),
    }


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await call()
    return time.perf_counter() - start


async def submit_many(api: httpx.AsyncClient, n: int, concurrency: int) -> tuple[list[dict[str, Any]], float]:
    """Submit n commands from ``concurrency`` clients; return the ids and submissions per second."""
    made: list[dict[str, Any]] = []
    queue = iter(range(n))

    async def client() -> None:
        for _ in queue:
            response = await api.post("/api/executions", json={"tool": TOOL})
            assert response.status_code == 201, response.text
            made.append(response.json())

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return made, n / (time.perf_counter() - start)


async def claim_latency(api: httpx.AsyncClient, ids: list[dict[str, Any]], concurrency: int) -> list[float]:
    samples: list[float] = []
    queue = iter(ids)

    async def claimer(worker: int) -> None:
        for item in queue:
            path = f"/api/commands/{item['command_id']}/claim"
            start = time.perf_counter()
            response = await api.post(path, json={"worker_id": f"bench-{worker}", "lease_seconds": 300})
            samples.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
            item["attempt"] = response.json()["attempt"]
            item["worker_id"] = f"bench-{worker}"

    await asyncio.gather(*(claimer(w) for w in range(concurrency)))
    return samples


async def complete_latency(api: httpx.AsyncClient, ids: list[dict[str, Any]]) -> list[float]:
    samples = []
    for item in ids:
        body = {
            "worker_id": item["worker_id"],
            "attempt": item["attempt"],
            "type": "completed",
            "payload": {"result": {"exit_code": 0}},
        }
        path = f"/api/commands/{item['command_id']}/events"
        start = time.perf_counter()
        await api.post(path, json=body)
        samples.append(time.perf_counter() - start)
    return samples


async def sql_claim_latency(env: dict[str, str], ids: list[dict[str, Any]]) -> list[float]:
    """The same claim transaction on a plain asyncpg connection: the database's share."""
    conn: asyncpg.Connection = await connect_once(load_settings(env))
    try:
        samples = []
        for item in ids:
            cid = uuid.UUID(item["command_id"])
            start = time.perf_counter()
            await command_queries.claim(conn, cid, "bench-sql", 300)
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        await conn.close()


async def notice_latency(api: httpx.AsyncClient, nats_url: str, n: int) -> list[float]:
    """Submit, then fetch the notice from a durable pull consumer: the time until a worker could see it."""
    import nats

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe("noetl.commands", durable="bench", stream="NOETL_COMMANDS")
        # Drain what earlier phases published.
        while True:
            try:
                for msg in await sub.fetch(500, timeout=0.5):
                    await msg.ack()
            except TimeoutError:  # nats.errors.TimeoutError too: nothing left
                break
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            response = await api.post("/api/executions", json={"tool": TOOL})
            expected = response.json()["command_id"]
            while True:
                (msg,) = await sub.fetch(1, timeout=10)
                await msg.ack()
                if json.loads(msg.data)["command_id"] == expected:
                    break
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        await nc.close()


async def outbox_drained(api: httpx.AsyncClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "noetl_outbox_backlog 0.0" in (await api.get("/metrics")).text:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"outbox not drained after {timeout}s")


async def measure(url: str, env: dict[str, str], nats_url: str, n: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CONCURRENCY * 2)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits, auth=RouteAuth()) as api:
        for _ in range(50):  # warm up connections, pool and statement caches
            await api.get("/api/health")
            await api.post("/api/executions", json={"tool": TOOL})
        health = [await timed(lambda: api.get("/api/health")) for _ in range(n)]
        sequential, submit_rate_1 = await submit_many(api, n, 1)
        concurrent, submit_rate_16 = await submit_many(api, n * 2, CONCURRENCY)
        await outbox_drained(api)  # measure claims alone, not while notices are still going out
        claim_1 = await claim_latency(api, sequential, 1)
        complete_1 = await complete_latency(api, sequential)
        claim_16 = await claim_latency(api, concurrent[:n], CONCURRENCY)
        spare, _ = await submit_many(api, n, 4)
        sql_claim = await sql_claim_latency(env, spare)
        notices = await notice_latency(api, nats_url, min(n, 200))
    health_s, claim_s, sql_s = summary(health), summary(claim_1), summary(sql_claim)
    return {
        "baseline_health": health_s,
        "baseline_sql_claim": sql_s,
        "claim_sequential": claim_s,
        f"claim_concurrent_{CONCURRENCY}": summary(claim_16),
        "complete_sequential": summary(complete_1),
        "submit_per_second_1_client": round(submit_rate_1, 1),
        f"submit_per_second_{CONCURRENCY}_clients": round(submit_rate_16, 1),
        "submit_to_notice": summary(notices),
        "ratio_claim_vs_health": round(claim_s["median_ms"] / health_s["median_ms"], 2),
        "ratio_claim_vs_sql_claim": round(claim_s["median_ms"] / sql_s["median_ms"], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=400, help="requests per measurement (default 400)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="noetl-bench-server-") as tmp_dir:
        tmp = Path(tmp_dir)
        with postgres_server(tmp / "pg") as pg, nats_server(tmp / "nats") as nats:
            pg.create_database("bench")
            port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "POSTGRES_"))},
                **pg.env("bench"),
                "NATS_URL": nats.url,
                "NOETL_HOST": "127.0.0.1",
                "NOETL_PORT": str(port),
                "NOETL_LOG_LEVEL": "warning",
                **TOKEN_ENV,
            }
            log = (tmp / "server.log").open("wb")
            server = subprocess.Popen([sys.executable, "-m", "noetl.server"], env=env, stdout=log, stderr=log)
            try:
                url = f"http://127.0.0.1:{port}"

                def ready() -> bool:
                    try:
                        return httpx.get(url + "/api/ready", timeout=1).status_code == 200
                    except httpx.TransportError:
                        return False

                wait_until(ready, 30, "server")
                results = asyncio.run(measure(url, env, nats.url, args.n))
            finally:
                stop_pid(server, signal.SIGTERM)
                log.close()
    results["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "n": args.n}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server.json").write_text(json.dumps(results, indent=2) + "\n")
    width = max(len(k) for k in results)
    for key, value in results.items():
        if key == "machine":
            continue
        shown = (
            f"median {value['median_ms']:.2f} ms  p95 {value['p95_ms']:.2f} ms  (n={value['n']})"
            if isinstance(value, dict)
            else str(value)
        )
        print(f"{key:<{width}}  {shown}")
    print(f"written to {RESULTS / 'server.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
