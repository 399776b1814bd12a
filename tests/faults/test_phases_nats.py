"""SIGKILL NATS at each phase of a command, and start it again on the same JetStream store.

| killed                                 | promised outcome                                               |
| -------------------------------------- | -------------------------------------------------------------- |
| before the command's notice is sent     | ran once: the notice waits in the outbox and is sent on return |
| with the claim on its way               | ran once: the claim and the work need only the server          |
| during the tool                         | ran once: heartbeats go to the server; NATS is only the hint   |
| after the report, before the ack        | ran once, recorded once: a notice that comes back is refused   |

NATS carries notices, never state: the lease lives in PostgreSQL. Noticed: the worker (and the
server) log the disconnection and the reconnection; the consumer is still there afterwards.
"""

from __future__ import annotations

import pytest

from tests.faults.crash import crash_nats
from tests.faults.rig import WORKER, Rig
from tests.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE = 20


def lines(rig: Rig, needle: str, name: str = WORKER) -> int:
    return rig.output(name).count(needle)


def crash_and_return(rig: Rig) -> None:
    """Crash NATS; once the worker has noticed, start it again on its store and wait for the
    worker to reconnect."""
    down, up = lines(rig, "nats: disconnected"), lines(rig, "nats: reconnected")
    crash_nats(rig.nats)
    wait_until(lambda: lines(rig, "nats: disconnected") > down, 45, "the worker noticing")
    rig.nats.start()
    wait_until(lambda: lines(rig, "nats: reconnected") > up, 60, "the worker reconnecting")


def test_crashed_before_the_notice_is_sent(rig: Rig) -> None:
    down = lines(rig, "nats: disconnected", "server")
    crash_nats(rig.nats)
    wait_until(lambda: lines(rig, "nats: disconnected", "server") > down, 45, "the server noticing")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token))  # accepted: the notice waits in the outbox
    assert rig.cluster.execution(execution_id)["commands"][0]["published_at"] is None
    rig.nats.start()

    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)


def test_crashed_with_the_claim_on_its_way(rig: Rig) -> None:
    held = rig.gate.hold("/claim", "request")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token))
    held.wait(60)
    down = lines(rig, "nats: disconnected")
    crash_nats(rig.nats)
    wait_until(lambda: lines(rig, "nats: disconnected") > down, 45, "the worker noticing")
    held.release()
    verdict, _ = rig.verdict(execution_id)  # the whole command ran with NATS down
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    rig.nats.start()


def test_crashed_during_the_tool(rig: Rig) -> None:
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token, seconds=3))
    rig.ledger.wait_runs(token, 1, timeout=60)
    crash_and_return(rig)

    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.started, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)


def test_crashed_after_the_report_before_the_ack(rig: Rig) -> None:
    held = rig.gate.hold("/events", "answer", "completed")
    token = rig.ledger.token()
    execution_id = rig.submit(rig.ledger.shell(token))
    held.wait(60)
    down = lines(rig, "nats: disconnected")
    crash_nats(rig.nats)
    wait_until(lambda: lines(rig, "nats: disconnected") > down, 45, "the worker noticing")
    held.release()  # the worker acks into a dead connection
    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.completed_events, verdict.attempts, verdict.lost_leases) == (1, 1, 1, 0)
    rig.nats.start()
    # If the notice comes back, its claim is refused: the command is finished.
    assert rig.claim_as_stranger(verdict.command_id) == 409

    # The same store: the stream and the consumer survived; the next command runs once.
    rig.ack_pending()
    token = rig.ledger.token()
    verdict, _ = rig.verdict(rig.submit(rig.ledger.shell(token)))
    assert (verdict.runs, verdict.attempts) == (1, 1)
