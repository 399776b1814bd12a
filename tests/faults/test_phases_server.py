"""SIGKILL the API server at each phase of a command, and start it again on the same port.

| killed                                | promised outcome                                               |
| ------------------------------------- | -------------------------------------------------------------- |
| after the claim, before its answer     | ran once, as attempt 1: the retried claim gets the same lease  |
| during the tool                        | ran once: heartbeats fail while it is away, then go on         |
| between the tool's end and its report  | ran once: the report is retried until the server is back       |
| after the report, before its answer    | ran once, recorded once: the retried report is a repeat        |
| after a submission, before its answer  | the lost try exists beside the retry: two tokens, each ran once |

The server's state is PostgreSQL's, so nothing is lost with it; what the worker saw is in the
gate: calls cut while the server was away (``dropped``), and every call it retried. The outage
is shorter than the lease (20 s here), so no lease is lost and no command runs twice.
"""

from __future__ import annotations

import pytest

from tests.faults.ledger import Load
from tests.faults.rig import Rig
from tests.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE = 20  # seconds: longer than a restart of the server on a loaded machine


def test_killed_after_the_claim_before_its_answer(rig: Rig) -> None:
    claims = rig.gate.count("/claim")
    held = rig.gate.hold("/claim", "answer")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token))
    held.wait(60)  # the claim is committed; its answer dies with the server
    rig.kill_server()
    held.drop()
    rig.cluster.start_server()

    verdict, view = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    assert [e["type"] for e in view["events"]].count("claimed") == 1
    # The worker asked twice, and the restarted server gave it the same lease back.
    assert rig.gate.count("/claim") == claims + 2


def test_killed_during_the_tool(rig: Rig) -> None:
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token, seconds=4))
    rig.ledger.wait_runs(token, 1, timeout=60)
    cut = rig.gate.dropped
    rig.kill_server()
    # Noticed: a heartbeat (every second) finds no server.
    wait_until(lambda: rig.gate.dropped > cut, 45, "a worker call cut by the outage")
    rig.cluster.start_server()

    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    assert "not answering" in rig.output()


def test_killed_between_the_tool_end_and_its_report(rig: Rig) -> None:
    held = rig.gate.hold("/events", "request", "completed")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.python(token))
    held.wait(60)
    rig.kill_server()
    cut = rig.gate.dropped
    held.release()  # the report meets no server: cut, and retried
    wait_until(lambda: rig.gate.dropped > cut, 45, "the report cut by the outage")
    rig.cluster.start_server()

    verdict, view = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    assert view["commands"][0]["result"] == token


def test_killed_after_the_report_before_its_answer(rig: Rig) -> None:
    reports = rig.gate.count("/events", "completed")
    held = rig.gate.hold("/events", "answer", "completed")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token))
    held.wait(60)  # the completion is committed; its answer dies with the server
    rig.kill_server()
    held.drop()
    rig.cluster.start_server()

    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.completed_events, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    # The worker sent its result twice; the second was recognised as a repeat, not stored again.
    wait_until(lambda: rig.gate.count("/events", "completed") == reports + 2, 60, "the retried report")


def test_killed_after_a_submission_before_its_answer(rig: Rig) -> None:
    # The client submits through the gate too: the server commits the execution, then dies.
    held = rig.gate.hold("/api/executions", "answer")
    load = Load(rig.gate.url, rig.ledger)
    client = load.in_background([lambda token: rig.ledger.shell(token)], pace=0)
    held.wait(60)
    rig.kill_server()
    held.drop()
    rig.cluster.start_server()
    client.join(60)
    assert not client.is_alive()

    # The client tried again (a new try, a new token) until it got an answer. Every try whose
    # answer was lost is known by its token: the first was created all the same, the ones
    # while the server was down were not. Nothing is a duplicate, and each execution ran once.
    (accepted,) = load.accepted
    assert load.unanswered and accepted not in load.unanswered
    verdicts = {v.token: v for v in load.verdicts() if v.token in {accepted, *load.unanswered}}
    created_lost = set(verdicts) & load.unanswered
    assert len(created_lost) == 1, verdicts  # the try whose answer died with the server
    for token in (accepted, *created_lost):
        rig.cluster.wait_finished([verdicts[token].execution_id], timeout=60)
    verdicts = {v.token: v for v in load.verdicts() if v.token in {accepted, *load.unanswered}}
    assert all(v.problem is None and v.runs == 1 for v in verdicts.values()), verdicts
    assert {t for t in load.unanswered if rig.ledger.runs(t)} == created_lost
