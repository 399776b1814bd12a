"""A worker's event, heartbeat or release after its command finished gets 409 and changes nothing
(docs/api.md); only the very same final event sent again is answered ``stored: false``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.conftest import execution, submit

pytestmark = pytest.mark.integration

FINAL = {"completed": {"result": 42}, "failed": {"error": "it broke"}}
LATE = [
    ("started", {}),
    ("progress", {"pct": 99}),
    ("completed", {"result": "late"}),
    ("failed", {"error": "late"}),
]


def test_an_event_after_the_command_finished_gets_409(api: httpx.Client) -> None:
    for final in sorted(FINAL):  # one server for both
        finish_then_send_late(api, final)


def finish_then_send_late(api: httpx.Client, final: str) -> None:
    ids = submit(api, max_attempts=1)
    cid, eid = ids["command_id"], ids["execution_id"]
    claim = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w", "lease_seconds": 30})
    assert claim.status_code == 200, claim.text
    holder: dict[str, Any] = {"worker_id": "w", "attempt": 1, "lease": claim.json()["lease"]}
    started = api.post(f"/api/commands/{cid}/events", json={**holder, "type": "started", "payload": {}})
    assert started.json() == {"stored": True}
    done = api.post(f"/api/commands/{cid}/events", json={**holder, "type": final, "payload": FINAL[final]})
    assert done.json() == {"stored": True}
    before = execution(api, eid)
    assert before["status"] == ("COMPLETED" if final == "completed" else "FAILED")

    for kind, payload in LATE:
        late = api.post(
            f"/api/commands/{cid}/events", json={**holder, "type": kind, "payload": payload, "seq": 5}
        )
        assert late.status_code == 409, (kind, late.text)
        assert late.json() == {"detail": f"command {cid} is already {final}"}
    for action in ("heartbeat", "release"):
        answer = api.post(f"/api/commands/{cid}/{action}", json=holder)
        assert answer.status_code == 409, (action, answer.text)
        assert answer.json()["detail"].startswith(f"command {cid} is already {final}")
    # The same final event once more (its answer lost, say) is a repeat, not a conflict.
    again = api.post(f"/api/commands/{cid}/events", json={**holder, "type": final, "payload": FINAL[final]})
    assert (again.status_code, again.json()) == (200, {"stored": False})

    after = execution(api, eid)
    assert after == before  # status, result, error, commands and events: all as they were
    assert [e["type"] for e in after["events"]].count(final) == 1
