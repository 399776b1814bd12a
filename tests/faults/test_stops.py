"""SIGTERM to `noetl run` under load, and a crash-looping program: exits that lose nothing and
leave no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import asyncpg
import psutil
import pytest

from noetl.settings import load_settings
from noetl.supervisor.render import max_stop_seconds
from tests.faults.conftest import FAULT_SETTINGS, WORKERS
from tests.faults.ledger import Ledger, Load, wait_claimed
from tests.faults.tree import TreeWatch, commands_below
from tests.services import Nats, Postgres
from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

# Longer than the workers' drain (NOETL_WORKER_STOP_TIMEOUT=6 gives 4.8 s): released, not finished.
LONG = 10
# How long a crash-looping program may take to end `noetl run`: 4 quick deaths with supervisord's
# back-off between them (1 + 2 + 3 s), imports included, and the stop.
CRASH_LOOP_BOUND = 60


def command_states(pg: Postgres) -> Counter[str]:
    """Commands by status, read from PostgreSQL directly (the API is down with the run)."""

    async def read() -> Counter[str]:
        conn = await asyncpg.connect(pg.dsn("noetl"))
        try:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM noetl.commands GROUP BY status")
        finally:
            await conn.close()
        return Counter({r["status"]: int(r["n"]) for r in rows})

    return asyncio.run(read())


def test_sigterm_under_load_exits_0_and_loses_nothing(
    stack: Stack, tmp_path: Path, own_pg: Postgres, ledger: Ledger
) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    assert stack.proc is not None
    load = Load(stack.url, ledger)
    long = [load.submit(lambda t: ledger.shell(t, LONG)) for _ in range(2)]
    load.submit_all([lambda t: ledger.shell(t, 1)] * 6 + [ledger.mixed(i) for i in range(16)])
    wait_claimed(load, 4, timeout=30)
    deadline = time.monotonic() + 30
    while not commands_below(stack.proc.pid, f"sleep {LONG}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert commands_below(stack.proc.pid, f"sleep {LONG}"), "the long commands never started"
    budget = max_stop_seconds(load_settings(stack.full_env()))
    with TreeWatch(stack.proc.pid) as tree:
        tree.sample()
        stack.signal(signal.SIGTERM)
        assert stack.wait(timeout=budget + 10) == 0, stack.output()[-3000:]
    assert tree.survivors() == []
    assert "Traceback" not in stack.output()
    # Read now: the next run's reaper would re-queue what this one left claimed.
    left_claimed = command_states(own_pg)["claimed"]

    # A new run on the same PostgreSQL and NATS finishes the rest, each command exactly once.
    again = Stack(home=tmp_path / "again", env=dict(stack.env))
    try:
        again.start()
        again.wait_ready()
        load.url = again.url
        load.wait_settled(timeout=120)
        verdicts = load.audit()
        assert len(verdicts) == 24
        assert {v.status for v in verdicts} == {"completed"}, [v for v in verdicts if v.status != "completed"]
        assert again.stop() == 0
    finally:
        again.stop()

    # What a drain is for: every command running at the SIGTERM was finished and reported, or
    # released, by the first run; none was left claimed to come back only when its lease expired
    # (costing it an attempt). This needs the server to outlive the draining workers.
    assert left_claimed == 0, stack.output()[-3000:]
    assert [v for v in verdicts if v.lost_leases] == []
    # The long ones were handed back and ran again; the rule checked every other ran once.
    assert {(v.runs, v.released) for v in verdicts if v.token in long} == {(2, 1)}


def test_a_crash_looping_worker_ends_run_non_zero(tmp_path: Path, own_pg: Postgres, own_nats: Nats) -> None:
    # The server wants a token the workers do not have: each worker dies at registration (exit 2),
    # supervisord restarts it, again and again.
    services = {**own_pg.env("noetl"), "NATS_URL": own_nats.url, **FAULT_SETTINGS}
    server = Stack(
        home=tmp_path / "server", env={**services, "NOETL_ROLE": "server", "NOETL_API_TOKEN": "right"}
    )
    workers = Stack(
        home=tmp_path / "workers",
        env={
            **services,
            "NOETL_ROLE": "worker",
            "NOETL_WORKER_TOKEN": "wrong",
            "NOETL_SERVER_URL": server.url,
        },
    )
    try:
        server.start()
        server.wait_running({"server"})
        server.wait_ready()
        proc = workers.start()
        with TreeWatch(proc.pid) as tree:
            try:
                code = workers.wait(timeout=CRASH_LOOP_BOUND)
            except subprocess.TimeoutExpired:
                pytest.fail(f"noetl run still up after {CRASH_LOOP_BOUND}s:\n{workers.output()[-3000:]}")
        assert code == 1
        last = workers.output().strip().splitlines()[-1]
        assert last.startswith("noetl: program worker_0"), last
        assert "could not start" in last or "crashing" in last
        assert "NOETL_API_TOKEN" in workers.output()  # the workers said why they died
        assert tree.survivors() == []
        assert server.stop() == 0
    finally:
        workers.stop()
        server.stop()


def test_a_worker_killed_again_and_again_ends_run_non_zero(stack: Stack, ledger: Ledger) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    assert stack.proc is not None
    load = Load(stack.url, ledger)
    load.submit_all([lambda t: ledger.shell(t, 8)] * 8)
    with TreeWatch(stack.proc.pid) as tree:
        # Crash worker_00 each time it is up, as a bug or the OOM killer would, mid-command.
        deadline = time.monotonic() + CRASH_LOOP_BOUND * 2
        while stack.proc.poll() is None and time.monotonic() < deadline:
            for row in stack.status():
                if row["name"] == "worker_00" and row["state"] == "RUNNING" and row["pid"]:
                    with contextlib.suppress(psutil.Error):
                        psutil.Process(int(row["pid"])).kill()
            time.sleep(0.3)
        code = stack.wait(timeout=30)
    assert code == 1
    last = stack.output().strip().splitlines()[-1]
    assert last.startswith("noetl: program worker_00 keeps crashing"), last
    assert tree.survivors() == []

    # Nothing was lost with the run: the next one ends every command. Each attempt that died
    # with worker_00 cost a lease, and a command that lost all three is dead, saying why.
    stack.start()
    stack.wait_ready()
    load.wait_settled(timeout=120)
    verdicts = load.audit()
    assert len(verdicts) == 8
    # worker_00 died holding commands (the audit checked each extra run cost a lost or handed-back lease).
    assert sum(v.lost_leases for v in verdicts) >= 1
    assert stack.stop() == 0
