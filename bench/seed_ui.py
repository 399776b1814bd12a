"""Seed what the web UI reads at scale: many executions, and one playbook run of many steps.

- ``seed_executions``: ``n`` executions in a few statements (``generate_series``, no row-by-row
  round trips): mixed statuses (85% COMPLETED, 10% FAILED, 5% CANCELLED, the newest 20 RUNNING),
  20 playbook paths registered in the catalog (one in ten is a `noetl submit` run without a path),
  spread over the last 7 days (younger than the default retention), each playbook run with its
  step run, the failed ones with the step that failed and its error. ~100,000 rows take seconds.
- ``run_long_playbook``: a real run of a linear playbook of ``steps`` steps through the API: the
  server's engine records every step (step runs, commands, events) exactly as for a real worker;
  this script plays the worker (claim, then report completed) so no tool process is spent.

Run alone against a running server (the settings come from the environment, as for `noetl`):
`.venv/bin/python bench/seed_ui.py [--executions 100000] [--steps 500]`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noetl.engine.playbook import parse_playbook  # noqa: E402
from noetl.server.db import connect_once  # noqa: E402
from noetl.server.migrations import migrate  # noqa: E402
from noetl.server.queries import catalog  # noqa: E402
from noetl.settings import load_settings  # noqa: E402
from noetl.tokens import WORKER_TOKEN_FILE, client_token, read_token, token_path  # noqa: E402

PATHS = 20
DAYS = 7
RUNNING = 20
FAILED_STEP = "transform"

PLAYBOOK = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: {name}
  path: {path}
  description: {description}
workload:
  day: "2026-11-30"
workflow:
{steps}"""


def playbook_text(path: str, steps: list[str], description: str) -> str:
    """A linear playbook of shell steps, one after another."""
    body = []
    for i, step in enumerate(steps):
        body.append(f"  - step: {step}\n    tool: {{kind: shell, command: 'echo {step}'}}\n")
        if i + 1 < len(steps):
            body.append(f"    next: {steps[i + 1]}\n")
    return PLAYBOOK.format(
        name=path.rsplit("/", 1)[-1], path=path, description=description, steps="".join(body)
    )


async def register(conn: asyncpg.Connection, path: str, steps: list[str], description: str) -> dict[str, Any]:
    entry, _ = await catalog.register(conn, parse_playbook(playbook_text(path, steps, description)))
    return entry


async def seed_executions(conn: asyncpg.Connection, n: int) -> dict[str, int]:
    """Insert ``n`` executions (see the module's docstring); returns how many of each status."""
    await migrate(conn)
    ids = []
    for p in range(PATHS):
        entry = await register(conn, f"bench/p{p:02d}", ["start", FAILED_STEP, "load"], f"bench playbook {p}")
        ids.append(entry["catalog_id"])
    async with conn.transaction():
        await conn.execute(
            """
            CREATE TEMP TABLE seeded ON COMMIT DROP AS
            SELECT i, gen_random_uuid() AS execution_id,
                   CASE WHEN i <= $3 THEN 'RUNNING'
                        WHEN i % 100 < 85 THEN 'COMPLETED'
                        WHEN i % 100 < 95 THEN 'FAILED'
                        ELSE 'CANCELLED' END AS status,
                   CASE WHEN i % 10 <> 0 THEN ($4::bigint[])[i % $5 + 1] END AS catalog_id,
                   CASE WHEN i % 10 <> 0 THEN 'bench/p' || lpad((i % $5)::text, 2, '0') END AS path,
                   now() - make_interval(secs => i * $2 * 86400.0 / $1) AS created_at
            FROM generate_series(1, $1) AS i
            """,
            n,
            DAYS,
            RUNNING,
            ids,
            PATHS,
        )
        await conn.execute(
            """
            INSERT INTO noetl.executions
                (execution_id, status, catalog_id, path, version, workload, result, error,
                 created_at, updated_at, finished_at)
            SELECT execution_id, status, catalog_id, path, CASE WHEN path IS NOT NULL THEN 1 END,
                   jsonb_build_object('day', '2026-11-30', 'n', i),
                   CASE WHEN status = 'COMPLETED' THEN jsonb_build_object('rows', i % 1000) END,
                   CASE status
                       WHEN 'FAILED' THEN 'step ''transform'' failed: exit 3: no rows for day ' || i
                       WHEN 'CANCELLED' THEN 'cancelled by bench' END,
                   created_at, created_at + make_interval(secs => i % 30 + 1),
                   CASE WHEN status <> 'RUNNING' THEN created_at + make_interval(secs => i % 30 + 1) END
            FROM seeded
            """
        )
        # A playbook run's steps as the engine leaves them: start done; transform done, failed,
        # cancelled or running; a failed one holds its error.
        await conn.execute(
            """
            INSERT INTO noetl.step_runs (execution_id, step, status, result, error, attempts, started_at,
                                         finished_at, updated_at)
            SELECT execution_id, 'start', 'done', jsonb_build_object('rows', i % 1000), NULL, 1,
                   created_at, created_at + interval '1 second', created_at + interval '1 second'
            FROM seeded WHERE path IS NOT NULL
            UNION ALL
            SELECT execution_id, $1,
                   CASE status WHEN 'COMPLETED' THEN 'done' WHEN 'FAILED' THEN 'failed'
                               WHEN 'CANCELLED' THEN 'cancelled' ELSE 'running' END,
                   NULL, CASE WHEN status = 'FAILED' THEN 'exit 3: no rows for day ' || i END, 1,
                   created_at + interval '1 second',
                   CASE WHEN status <> 'RUNNING' THEN created_at + make_interval(secs => i % 30 + 1) END,
                   created_at + make_interval(secs => i % 30 + 1)
            FROM seeded WHERE path IS NOT NULL
            """,
            FAILED_STEP,
        )
        rows = await conn.fetch("SELECT status, count(*) AS n FROM seeded GROUP BY status")
    # As autovacuum would soon: statistics for the planner, the visibility map for index-only scans.
    await conn.execute("VACUUM ANALYZE noetl.executions, noetl.step_runs")
    return {r["status"]: int(r["n"]) for r in rows}


async def run_long_playbook(
    api: httpx.AsyncClient, worker_api: httpx.AsyncClient, conn: asyncpg.Connection, steps: int
) -> str:
    """Register and run a linear playbook of ``steps`` steps to COMPLETED; its execution id.

    ``api`` sends the client token, ``worker_api`` the worker token; ``conn`` finds each step's
    pending command (what a worker learns from its NATS notice).
    """
    names = ["start", *(f"step_{i:03d}" for i in range(1, steps))]
    content = playbook_text(f"bench/steps_{steps}", names, f"a linear run of {steps} steps")
    answer = await api.post("/api/catalog/register", json={"content": content})
    assert answer.status_code == 200, answer.text
    answer = await api.post("/api/execute", json={"path": f"bench/steps_{steps}"})
    assert answer.status_code in (200, 201), answer.text
    execution_id = str(answer.json()["execution_id"])
    worker = "bench-seed:worker:1"
    for i in range(steps):
        command_id = await _pending_command(conn, execution_id)
        claim = await worker_api.post(f"/api/commands/{command_id}/claim", json={"worker_id": worker})
        assert claim.status_code == 200, claim.text
        lease = claim.json()
        result = {"exit_code": 0, "stdout": f"{names[i]}\n", "stderr": ""}
        for kind, payload in (("started", {}), ("completed", {"result": result})):
            body = {"worker_id": worker, "attempt": lease["attempt"], "lease": lease["lease"]}
            done = await worker_api.post(
                f"/api/commands/{command_id}/events", json={**body, "type": kind, "payload": payload}
            )
            assert done.status_code == 200, done.text
    status = await conn.fetchval(
        "SELECT status FROM noetl.executions WHERE execution_id = $1", uuid.UUID(execution_id)
    )
    assert status == "COMPLETED", status
    return execution_id


async def _pending_command(conn: asyncpg.Connection, execution_id: str) -> uuid.UUID:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = await conn.fetchval(
            "SELECT command_id FROM noetl.commands WHERE execution_id = $1 AND status = 'pending'",
            uuid.UUID(execution_id),
        )
        if found is not None:
            return uuid.UUID(str(found))
        await asyncio.sleep(0.005)
    raise AssertionError(f"no pending command for {execution_id}")


async def main_async(executions: int, steps: int) -> None:
    settings = load_settings()
    conn = await connect_once(settings)
    try:
        start = time.perf_counter()
        counts = await seed_executions(conn, executions)
        print(f"seeded {sum(counts.values())} executions {counts} in {time.perf_counter() - start:.1f} s")
        if steps:
            base = settings.server_url
            worker_token = settings.worker_token or read_token(token_path(settings.home, WORKER_TOKEN_FILE))
            async with (
                httpx.AsyncClient(base_url=base, headers=_bearer(client_token(settings)), timeout=30) as api,
                httpx.AsyncClient(base_url=base, headers=_bearer(worker_token), timeout=30) as workers,
            ):
                start = time.perf_counter()
                execution_id = await run_long_playbook(api, workers, conn, steps)
                print(f"ran {steps} steps as execution {execution_id} in {time.perf_counter() - start:.1f} s")
    finally:
        await conn.close()


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=500, help="steps of the long run (0: none)")
    args = parser.parse_args()
    asyncio.run(main_async(args.executions, args.steps))


if __name__ == "__main__":
    main()
