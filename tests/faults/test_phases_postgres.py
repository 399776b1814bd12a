"""SIGKILL PostgreSQL (the postmaster and every backend at once) at each phase of a command, and
start it again on the same data directory: it comes back through crash recovery.

| killed                                | promised outcome                                                |
| ------------------------------------- | --------------------------------------------------------------- |
| with the claim on its way             | ran once, as attempt 1: the claim answered 503 and was retried  |
| during the tool                       | ran once: heartbeats answered 503 meanwhile, the lease held      |
| between the tool's end and its report | ran once: the report answered 503 and was retried               |
| after the report was committed        | ran once, recorded once: the commit survived the crash          |

Noticed: the server answers 503 while the database is away (the gate sees it) and PostgreSQL's
log shows crash recovery on each start. The outage is shorter than the lease (20 s here).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.faults.crash import crash_postgres, recoveries
from tests.faults.rig import Rig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE = 20  # seconds: longer than PostgreSQL's crash recovery on a loaded machine


def crash_and_recover(rig: Rig, suffix: str, then: Callable[[], None] = lambda: None) -> None:
    """Crash PostgreSQL, ``then`` (let a held call go on), wait until a worker call to ``suffix``
    got 503, and start PostgreSQL again: it recovers from its WAL."""
    before = recoveries(rig.pg)
    crash_postgres(rig.pg)
    then()
    rig.wait_gate(suffix, 503)
    rig.pg.start()
    assert recoveries(rig.pg) == before + 1  # it was a crash: PostgreSQL recovered from its WAL


def test_crashed_with_the_claim_on_its_way(rig: Rig) -> None:
    held = rig.gate.hold("/claim", "request")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token))
    held.wait(60)
    crash_and_recover(rig, "/claim", then=held.release)

    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)


def test_crashed_during_the_tool(rig: Rig) -> None:
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token, seconds=4))
    rig.ledger.wait_runs(token, 1, timeout=60)
    crash_and_recover(rig, "/heartbeat")

    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)


def test_crashed_between_the_tool_end_and_its_report(rig: Rig) -> None:
    held = rig.gate.hold("/events", "request", "completed")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.python(token))
    held.wait(60)
    crash_and_recover(rig, "/events", then=held.release)

    verdict, view = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    assert view["commands"][0]["result"] == token


def test_crashed_after_the_report_was_committed(rig: Rig) -> None:
    held = rig.gate.hold("/events", "answer", "completed")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.python(token))
    held.wait(60)  # committed: the server answered 200
    before = recoveries(rig.pg)
    crash_postgres(rig.pg)
    held.release()
    rig.pg.start()
    assert recoveries(rig.pg) == before + 1

    verdict, view = rig.verdict(execution_id)
    assert (verdict.runs, verdict.completed_events, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    assert view["commands"][0]["result"] == token  # the committed result came back with recovery
