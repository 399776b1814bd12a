"""Auth on the real server: every route needs a token but the probes, each token its own routes,
a lease's secret, an idempotent claim, no GET bodies, and NOETL_AUTH=none only on loopback."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Callable

import httpx
import pytest

from noetl.server.app import create_app
from noetl.settings import load_settings
from tests.auth import CLIENT_TOKEN, WORKER_TOKEN, bearer
from tests.server.conftest import ROOT, Server, clean_env, command_of, execution, submit

pytestmark = pytest.mark.integration

OPEN = {("GET", "/api/health"), ("GET", "/api/ready"), ("GET", "/metrics")}


def every_route() -> list[tuple[str, str]]:
    """(method, concrete path) of every route the app has, walked from the app itself so that a
    route added later is checked without anyone remembering to list it here."""
    app = create_app(load_settings({"POSTGRES_HOST": "127.0.0.1", "NOETL_HOST": "127.0.0.1"}))
    calls = []
    for route in app.routes:
        # FastAPI >= 0.12x keeps included routers as one entry each; older ones list their routes.
        candidates = route.effective_candidates() if hasattr(route, "effective_candidates") else [route]
        for candidate in candidates:
            concrete = re.sub(r"\{[^}]*_id\}", str(uuid.uuid4()), candidate.path)
            concrete = re.sub(r"\{[^}]*\}", "x", concrete)
            calls.extend((method, concrete) for method in sorted(set(candidate.methods or ()) - {"HEAD"}))
    return calls


def test_every_route_without_a_token_is_401_except_the_probes(server: Server) -> None:
    calls = every_route()
    assert len(calls) >= 20  # the app's own routes and the docs
    with server.client(auth=None) as anonymous:
        for method, path in calls:
            for headers in ({}, bearer("wrong"), {"Authorization": CLIENT_TOKEN}):
                answer = anonymous.request(
                    method, path, headers=headers, json={} if method != "GET" else None
                )
                if (method, path) in OPEN:
                    assert answer.status_code in (200, 503), (method, path)
                else:
                    assert answer.status_code == 401, (method, path, headers, answer.text)
                    assert answer.json() == {
                        "detail": "missing or wrong API token: send Authorization: Bearer <NOETL_API_TOKEN>"
                    }
        # The client token reads everything a client reads: executions are no longer public.
        ids = submit(server.client())
        shown = anonymous.get(f"/api/executions/{ids['execution_id']}", headers=bearer(CLIENT_TOKEN))
        assert shown.status_code == 200
        assert shown.json()["commands"][0]["tool"] == {"kind": "shell", "command": "echo hi"}
    server.stop()
    log = server.log.read_text()
    assert CLIENT_TOKEN not in log and WORKER_TOKEN not in log


def test_each_token_is_refused_on_the_other_ones_routes(server: Server, api: httpx.Client) -> None:
    ids = submit(api)
    cid = ids["command_id"]
    with server.client(auth=None, headers=bearer(CLIENT_TOKEN)) as client:
        for path in ("claim", "heartbeat", "events", "release"):
            refused = client.post(f"/api/commands/{cid}/{path}", json={"worker_id": "w"})
            assert refused.status_code == 403, path
            assert "NOETL_WORKER_TOKEN" in refused.json()["detail"]
        assert client.post("/api/workers", json={"worker_id": "w"}).status_code == 403
        assert client.delete("/api/workers/w").status_code == 403
        assert client.get("/api/workers").status_code == 200  # the list is a client's read
    with server.client(auth=None, headers=bearer(WORKER_TOKEN)) as worker:
        for method, path in (("GET", f"/api/executions/{ids['execution_id']}"), ("POST", "/api/executions")):
            assert worker.request(method, path, json={}).status_code == 403, path
        assert worker.post(f"/api/commands/{cid}/claim", json={"worker_id": "w"}).status_code == 200
    # Nothing the refused calls sent reached the command: the worker's claim is its only one.
    assert command_of(api, ids["execution_id"])["attempt"] == 1


def test_a_claim_retried_after_its_answer_was_lost_gets_the_same_lease(api: httpx.Client) -> None:
    ids = submit(api)
    cid, eid = ids["command_id"], ids["execution_id"]
    body = {"worker_id": "w1", "lease_seconds": 30, "request_id": "r-1"}
    first = api.post(f"/api/commands/{cid}/claim", json=body)
    again = api.post(f"/api/commands/{cid}/claim", json=body)
    assert first.status_code == again.status_code == 200
    assert (again.json()["attempt"], again.json()["lease"]) == (
        first.json()["attempt"],
        first.json()["lease"],
    )
    assert again.json()["attempt"] == 1
    # Another claim (another request id, another worker) is still refused.
    assert api.post(f"/api/commands/{cid}/claim", json={**body, "request_id": "r-2"}).status_code == 409
    assert api.post(f"/api/commands/{cid}/claim", json={**body, "worker_id": "w2"}).status_code == 409
    assert api.post(f"/api/commands/{cid}/claim", json={"worker_id": "w1"}).status_code == 409
    claimed = [e for e in execution(api, eid)["events"] if e["type"] == "claimed"]
    assert len(claimed) == 1  # one attempt, one claimed event


def test_a_get_with_a_body_is_400(api: httpx.Client) -> None:
    answer = api.request("GET", "/api/executions", content=b'{"limit": 1}')
    assert answer.status_code == 400
    assert answer.json() == {"detail": "GET takes no request body; send the parameters in the query string"}
    assert api.get("/api/executions").status_code == 200


def test_auth_none_on_loopback_needs_no_token(
    make_server: Callable[..., Server], server_env: dict[str, str]
) -> None:
    server = make_server({**server_env, "NOETL_AUTH": "none"})
    with server.client(auth=None) as anonymous:
        assert anonymous.post("/api/executions", json={"tool": {"kind": "noop"}}).status_code == 201


@pytest.mark.parametrize("argv", [["-m", "noetl.server"], ["-m", "noetl", "run"]])
def test_auth_none_off_loopback_exits_2_with_one_line(argv: list[str]) -> None:
    env = clean_env(NOETL_AUTH="none", NOETL_HOST="0.0.0.0", POSTGRES_HOST="127.0.0.1")
    done = subprocess.run(
        [sys.executable, *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "NOETL_AUTH=none needs a loopback NOETL_HOST" in lines[0] and "'0.0.0.0'" in lines[0]
    assert done.stdout == ""
