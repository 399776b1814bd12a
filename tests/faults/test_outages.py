"""Restart NATS, and PostgreSQL, in the middle of a load: every command still ends exactly once."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import WORKERS
from tests.faults.ledger import Load, assert_all_ended_properly, mixed, sleep, wait_claimed
from tests.faults.tree import TreeWatch
from tests.services import Nats, Postgres
from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

OUTAGE = 3.0  # seconds the service stays down


def test_restart_nats_mid_load(stack: Stack, own_nats: Nats) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    assert stack.proc is not None
    with TreeWatch(stack.proc.pid) as tree:
        load = Load(stack.url)
        load.submit_all(mixed(12, sleep(2)))
        wait_claimed(load, 2, timeout=30)
        feeder = load.in_background(mixed(18, sleep(1)), pace=0.2)
        own_nats.stop()
        time.sleep(OUTAGE)  # commands submitted now wait in the outbox
        own_nats.start()
        feeder.join(120)
        assert not feeder.is_alive()

        load.wait_settled(30, timeout=150)
        verdicts = assert_all_ended_properly(load, 30)
        assert {v.status for v in verdicts} == {"completed"}
        assert "nats: disconnected" in stack.output()  # the outage was seen by the stack
        assert stack.proc.poll() is None
        assert stack.stop() == 0
    assert tree.survivors() == []


def test_restart_postgres_mid_load(stack: Stack, own_pg: Postgres) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    assert stack.proc is not None
    with TreeWatch(stack.proc.pid) as tree:
        load = Load(stack.url)
        load.submit_all(mixed(12, sleep(2)))
        wait_claimed(load, 2, timeout=30)
        feeder = load.in_background(mixed(18, sleep(1)), pace=0.2)
        own_pg.stop()
        time.sleep(OUTAGE)  # submissions get 503 now and are retried by the client
        own_pg.start()
        feeder.join(120)
        assert not feeder.is_alive()

        load.wait_settled(30, timeout=150)
        verdicts = assert_all_ended_properly(load, 30)
        assert {v.status for v in verdicts} == {"completed"}
        assert load.refused > 0  # the outage was seen by clients
        assert stack.proc.poll() is None
        assert stack.stop() == 0
    assert tree.survivors() == []
