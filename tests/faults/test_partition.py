"""A network partition between a running worker and the rest (server and NATS), longer than the
lease: the promise's one case of running twice without a crash.

Promised outcome: the server takes the lease back when it expires (``lease_expired``), another
worker runs the command again and its result is recorded, once. When the partition heals, the
cut-off worker learns at its next heartbeat that its lease is lost: it stops its tool and reports
nothing. Ran twice, recorded once.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.link import Link
from tests.faults.rig import WORKER, Rig
from tests.faults.tree import commands_below
from tests.services import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE = 3
LONG = 60  # the first run's work: far longer than the test, so only the lost lease can stop it


def test_a_partition_longer_than_the_lease(rig: Rig) -> None:
    rig.kill_worker()
    with Link(rig.nats.port) as link:
        rig.start_worker(NATS_URL=f"nats://127.0.0.1:{link.port}")
        token = rig.ledger.token()
        path = rig.ledger.path(token)
        # The first run works for a long time; the run after it ends at once.
        tool = {
            "kind": "shell",
            "command": f'echo $$ >> {path}; [ "$(wc -l < {path})" -gt 1 ] || sleep {LONG}',
        }
        execution_id = rig.submit(tool)
        rig.ledger.wait_runs(token, 1, timeout=60)
        cut_at = time.monotonic()
        rig.gate.partition(True)
        link.cut()
        rig.start_worker("worker_01", through_gate=False)

        verdict, view = rig.verdict(execution_id)  # during the partition
        assert time.monotonic() - cut_at > LEASE
        assert (verdict.runs, verdict.started, verdict.attempts) == (2, 2, 2)
        assert (verdict.lost_leases, verdict.lease_expired, verdict.completed_events) == (1, 1, 1)
        (done,) = [e for e in view["events"] if e["type"] == "completed"]
        assert ":worker_01:" in done["worker_id"] and done["attempt"] == 2
        assert commands_below(rig.cluster.workers[WORKER].pid, f"sleep {LONG}")  # still at it

        rig.gate.partition(False)
        link.mend()
        wait_until(lambda: "lease lost" in rig.output(), 60, "the cut-off worker learning of it")
        wait_until(
            lambda: not commands_below(rig.cluster.workers[WORKER].pid, f"sleep {LONG}"),
            10,
            "its tool stopped",
        )
    # Nothing more was recorded: still one completed event, by attempt 2.
    verdict, _ = rig.verdict(execution_id)
    assert (verdict.runs, verdict.completed_events, verdict.attempts) == (2, 1, 2)
