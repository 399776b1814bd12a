"""SIGKILL the worker at each phase of a command; a new worker process takes over.

| killed                           | promised outcome                                                    |
| -------------------------------- | ------------------------------------------------------------------- |
| after the report, before the ack | ran once, recorded once; the unacked notice comes back and is refused |
| before the claim answer          | ran once (by attempt 2), recorded once; the lease expired             |
| during the tool                  | ran twice (the lease expired), recorded once, by attempt 2            |
| between the tool's end and report| ran twice (the lease expired), recorded once, by attempt 2            |

A worker that dies holding a lease cannot say so: the reaper notices the lease expire (a
``lease_expired`` event, ``lost_leases`` 1) and the command runs again. That second run is the
"at least once" of the promise; the record still holds one ``completed`` event.
"""

from __future__ import annotations

import pytest

from tests.faults.rig import Rig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE = 3  # seconds: the killed worker's lease expires soon


def test_killed_between_the_report_and_the_ack(rig: Rig) -> None:
    # First in the module: no other notice is waiting for its ack wait.
    before = rig.ack_pending()
    held = rig.gate.hold("/events", "answer", "completed")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token))
    held.wait(60)
    rig.kill_worker()
    held.drop()

    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    # The notice was never acknowledged: NATS delivers it again after its ack wait, and the claim
    # it leads to is refused because the command is finished.
    assert rig.ack_pending() == before + 1
    assert rig.claim_as_stranger(verdict.command_id) == 409


def test_killed_before_the_claim_answer(rig: Rig) -> None:
    held = rig.gate.hold("/claim", "answer")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token))
    held.wait(60)  # the server applied the claim; the worker never hears of it
    rig.kill_worker()
    held.drop()
    rig.start_worker()

    verdict, view = rig.verdict(execution_id)
    # The claim records its attempt's `started` in its own statement (one call less a command),
    # so attempt 1 counts as started although its tool never ran: 2 started, 1 run.
    assert (verdict.runs, verdict.started, verdict.attempts) == (1, 2, 2)
    assert (verdict.lost_leases, verdict.lease_expired) == (1, 1)  # noticed: the lease expired
    assert [e["attempt"] for e in view["events"] if e["type"] == "claimed"] == [1, 2]


def test_killed_during_the_tool(rig: Rig) -> None:
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token, seconds=2))
    rig.ledger.wait_runs(token, 1, timeout=60)  # the tool has done its side effect and works on
    rig.kill_worker()
    rig.start_worker()

    verdict, view = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts) == (2, 2, 2)  # at least once: twice
    assert (verdict.lost_leases, verdict.lease_expired, verdict.completed_events) == (1, 1, 1)
    (done,) = [e for e in view["events"] if e["type"] == "completed"]
    assert done["attempt"] == 2


def test_killed_between_the_tool_end_and_its_report(rig: Rig) -> None:
    reports = rig.gate.count("/events", "completed")
    held = rig.gate.hold("/events", "request", "completed")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.python(token))
    held.wait(60)  # the tool ended; its result is on the way
    rig.kill_worker()
    held.drop()
    rig.start_worker()

    verdict, view = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts) == (2, 2, 2)
    assert (verdict.lost_leases, verdict.lease_expired, verdict.completed_events) == (1, 1, 1)
    assert view["commands"][0]["result"] == token
    assert rig.gate.count("/events", "completed") == reports + 1  # the first result never reached the server
