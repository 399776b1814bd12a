"""The peer: procrastinate, a well-known PostgreSQL job queue, with the benchmark's no-op tasks.

``make_app(dsn)`` builds a procrastinate app with two tasks: ``run_true`` spawns `true` and waits for
it (the same work as noetl's shell tool running `true`: one child process per job) and ``noop``
does nothing in-process (procrastinate's own floor). ``python bench/peer_queue.py --dsn DSN
--concurrency N`` runs one worker process, as noetl runs one per NOETL_WORKERS; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import procrastinate

TASKS = ("run_true", "noop")


def make_app(dsn: str) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

    @app.task(name="run_true")
    async def run_true() -> None:
        proc = await asyncio.create_subprocess_exec("true")
        await proc.wait()

    @app.task(name="noop")
    async def noop() -> None:
        return None

    return app


async def work(dsn: str, concurrency: int) -> None:
    app = make_app(dsn)
    async with app.open_async():
        await app.run_worker_async(concurrency=concurrency, install_signal_handlers=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", required=True, help="libpq connection string of the peer's database")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs one worker runs at once")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(work(args.dsn, args.concurrency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
