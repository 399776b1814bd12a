"""A server and one worker talking through a ``Gate``, on a PostgreSQL and a NATS the test may crash.

The phase scenarios each run one tokened command through it and SIGKILL one process at one phase of
that command. Processes are started by the worker harness's ``Cluster`` (no supervisord: the test
restarts what it killed, at the moment it chooses).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from noetl.protocol.nats import DURABLE
from tests.faults.crash import crash
from tests.faults.gate import Gate
from tests.faults.ledger import Ledger, Tool, Verdict, judge
from tests.services import Nats, Postgres, nats_server, postgres_server, wait_until
from tests.worker.harness import Cluster, clean_env

WORKER = "worker_00"
STREAM = "NOETL_COMMANDS"


@dataclass
class Rig:
    cluster: Cluster
    gate: Gate
    ledger: Ledger
    pg: Postgres
    nats: Nats
    lease: float  # what the worker is started with now
    default_lease: float = 0.0

    def __post_init__(self) -> None:
        self.default_lease = self.default_lease or self.lease

    def start_worker(self, name: str = WORKER, through_gate: bool = True, **extra: str) -> None:
        url = self.gate.url if through_gate else self.cluster.url
        self.cluster.start_worker(name, NOETL_SERVER_URL=url, NOETL_WORKER_LEASE=f"{self.lease:g}", **extra)
        self.cluster.wait_worker_ready(name)

    def heal(self) -> None:
        """Everything running again and no call held: where each scenario starts."""
        self.gate.clear()
        if self.pg.proc is None:
            self.pg.start()
        if self.nats.proc is None:
            self.nats.start()
        if self.cluster.server is None or self.cluster.server.poll() is not None:
            self.cluster.start_server()
        proc = self.cluster.workers.get(WORKER)
        if proc is not None and proc.poll() is None and self.lease != self.default_lease:
            self.kill_worker()
            proc = None
        self.lease = self.default_lease
        if proc is None or proc.poll() is not None:
            self.start_worker()

    def use_lease(self, seconds: float, **extra: str) -> None:
        """Start the worker again with another lease, and ``extra`` settings (for this scenario only)."""
        self.kill_worker()
        self.lease = seconds
        self.start_worker(**extra)

    def kill_worker(self, name: str = WORKER) -> None:
        """SIGKILL the worker process alone (its tools die with it: they are killed with their parent)."""
        proc = self.cluster.workers.pop(name)
        proc.kill()
        proc.wait(10)

    def kill_server(self) -> None:
        assert self.cluster.server is not None
        crash(self.cluster.server)
        self.cluster.server = None

    def submit(self, tool: Tool, max_attempts: int = 3) -> str:
        execution_id, _ = self.cluster.submit(tool, timeout=120, max_attempts=max_attempts)
        return execution_id

    def verdict(self, execution_id: str, timeout: float = 150) -> tuple[Verdict, dict[str, Any]]:
        """Wait for the execution to end; what the record and the ledger say (the rule checked)."""
        view = self.cluster.wait_finished([execution_id], timeout=timeout)[execution_id]
        verdict = judge(view, self.ledger)
        assert verdict.problem is None, (verdict, view)
        return verdict, view

    def output(self, name: str = WORKER) -> str:
        return self.cluster.output(name)

    def ack_pending(self) -> int:
        """Notices delivered to a worker and not acknowledged (they come back after the ack wait)."""

        async def read() -> int:
            import nats

            nc = await nats.connect(self.nats.url, connect_timeout=2, max_reconnect_attempts=0)
            try:
                info = await nc.jetstream(timeout=2).consumer_info(STREAM, DURABLE)
                return int(info.num_ack_pending)
            finally:
                await nc.close()

        return asyncio.run(read())

    def claim_as_stranger(self, command_id: str) -> int:
        """What a late notice's claim gets now: the status of a claim by another worker."""
        response = httpx.post(
            f"{self.cluster.url}/api/commands/{command_id}/claim",
            json={"worker_id": "stranger:1", "lease_seconds": 5},
            timeout=10,
            auth=self.cluster.auth(),
        )
        return response.status_code

    def wait_gate(self, suffix: str, status: int, timeout: float = 60) -> None:
        """Wait until the server answered a call ending with ``suffix`` with ``status``."""

        def seen() -> bool:
            return any(path.endswith(suffix) and code == status for path, _, code in list(self.gate.calls))

        wait_until(seen, timeout, f"a {status} answer to {suffix}")


@contextlib.contextmanager
def running_rig(tmp: Path, lease: float, reaper: float = 0.2) -> Iterator[Rig]:
    """A server, a gate and one worker behind it, on their own PostgreSQL and NATS."""
    # Not under pytest's tmp dir: PostgreSQL's user must be able to reach its directory.
    with (
        tempfile.TemporaryDirectory(prefix="noetl-phases-pg-") as pg_tmp,
        tempfile.TemporaryDirectory(prefix="noetl-ledger-") as ledger_dir,
        postgres_server(Path(pg_tmp)) as pg,
        nats_server(tmp / "nats") as nats,
    ):
        pg.create_database("noetl")
        cluster = Cluster(
            tmp=tmp,
            env=clean_env(
                **pg.env("noetl"),
                NATS_URL=nats.url,
                NOETL_REAPER_INTERVAL=f"{reaper:g}",
                NOETL_LOG_LEVEL="info",
            ),
        )
        try:
            cluster.start_server()
            with Gate(cluster.url) as gate:
                found = Rig(cluster, gate, Ledger(Path(ledger_dir)), pg, nats, lease)
                found.start_worker()
                yield found
        finally:
            cluster.stop_all()
