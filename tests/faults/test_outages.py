"""Crash NATS, and PostgreSQL, with SIGKILL in the middle of a load under `noetl run`, and start
them again on the same store and data directory: every command ran once and was recorded once.

The outage is shorter than the lease (20 s here), so no lease may be lost; what was submitted
during it waits (in the outbox for NATS; clients retry the 503s for PostgreSQL). The outage must
have been noticed: the stack logs NATS's disconnection, clients saw PostgreSQL's refusals, and
PostgreSQL started by crash recovery.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import WORKERS
from tests.faults.crash import crash_nats, crash_postgres, recoveries
from tests.faults.ledger import Ledger, Load, wait_claimed
from tests.faults.tree import TreeWatch
from tests.services import Nats, Postgres, wait_until
from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

LEASE = "20"


def start(stack: Stack, ledger: Ledger) -> Load:
    stack.env["NOETL_WORKER_LEASE"] = LEASE
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    load = Load(stack.url, ledger)
    load.submit_all([ledger.mixed(i, 2) for i in range(12)])
    wait_claimed(load, 2, timeout=30)
    return load


def check(load: Load, stack: Stack, submitted: int) -> None:
    load.wait_settled(timeout=150)
    verdicts = load.audit()
    assert len(load.accepted) == submitted and {v.status for v in verdicts} == {"completed"}
    assert {(v.runs, v.lost_leases) for v in verdicts} == {(1, 0)}  # each ran once


def test_crash_nats_mid_load(stack: Stack, own_nats: Nats, ledger: Ledger) -> None:
    load = start(stack, ledger)
    assert stack.proc is not None
    with TreeWatch(stack.proc.pid) as tree:
        feeder = load.in_background([ledger.mixed(i) for i in range(18)], pace=0.2)
        down = stack.output().count("nats: disconnected")
        crash_nats(own_nats)
        # Noticed by the stack; then back on the same store (commands submitted meanwhile wait).
        wait_until(lambda: stack.output().count("nats: disconnected") > down, 30, "the stack noticing")
        own_nats.start()
        feeder.join(120)
        assert not feeder.is_alive()

        check(load, stack, 30)
        assert stack.proc.poll() is None
        assert stack.stop() == 0
    assert tree.survivors() == []


def test_crash_postgres_mid_load(stack: Stack, own_pg: Postgres, ledger: Ledger) -> None:
    load = start(stack, ledger)
    assert stack.proc is not None
    with TreeWatch(stack.proc.pid) as tree:
        feeder = load.in_background([ledger.mixed(i) for i in range(18)], pace=0.2)
        before = recoveries(own_pg)
        crash_postgres(own_pg)
        wait_until(lambda: load.refused > 0, 60, "a client refused")  # noticed: submissions get 503
        own_pg.start()
        assert recoveries(own_pg) == before + 1  # crash recovery, on the same data directory
        feeder.join(120)
        assert not feeder.is_alive()

        check(load, stack, 30)
        assert stack.proc.poll() is None
        assert stack.stop() == 0
    assert tree.survivors() == []
