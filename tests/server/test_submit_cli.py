"""`noetl submit`, `noetl status` as real subprocesses against the real server; this test is the worker."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import ROOT, Server, clean_env, execution, stream_notices, wait_for
from tests.services import Nats

pytestmark = pytest.mark.integration


def noetl(server: Server, *args: str, token: str | None = None) -> subprocess.Popen[str]:
    env = clean_env(NOETL_SERVER_URL=server.url, **({"NOETL_API_TOKEN": token} if token else {}))
    return subprocess.Popen(
        [sys.executable, "-m", "noetl", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def act_as_worker(
    api: httpx.Client, nats: Nats, decide: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """Take the notice from JetStream, claim the command, report started and the outcome."""
    _, notice = wait_for(lambda: stream_notices(nats.url), what="notice")[0]
    cid = notice["command_id"]
    claim = api.post(f"/api/commands/{cid}/claim", json={"worker_id": "test-worker", "lease_seconds": 30})
    assert claim.status_code == 200, claim.text
    lease = claim.json()
    base = {"worker_id": "test-worker", "attempt": lease["attempt"], "lease": lease["lease"]}
    assert api.post(f"/api/commands/{cid}/events", json={**base, "type": "started"}).status_code == 200
    kind, payload = decide(lease)
    done = api.post(f"/api/commands/{cid}/events", json={**base, "type": kind, "payload": payload})
    assert done.json() == {"stored": True}
    return lease


def test_submit_shell_wait_prints_result_and_exits_0(server: Server, api: httpx.Client, nats: Nats) -> None:
    proc = noetl(server, "submit", "shell", "--command", "echo hi", "--wait")
    result = {"exit_code": 0, "stdout": "hi\n", "stderr": ""}
    lease = act_as_worker(api, nats, lambda lease: ("completed", {"result": result}))
    code, out, err = finish(proc)
    assert code == 0, err
    assert json.loads(out) == result
    assert f"execution {lease['execution_id']}" in err
    assert lease["tool"] == {"kind": "shell", "command": "echo hi"}


def test_submit_python_wait_failed_exits_1(server: Server, api: httpx.Client, nats: Nats) -> None:
    proc = noetl(
        server,
        "submit",
        "--timeout",
        "30",
        "python",
        "--code",
        "raise SystemExit(3)",
        "--arg",
        "n=3",
        "--arg",
        "s=hello",
        "--arg",
        'j={"a": [1, 2]}',
        "--max-attempts",
        "2",
        "--wait",
    )
    seen: dict[str, Any] = {}

    def fail(lease: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        seen.update(lease)
        return "failed", {"error": "SystemExit: 3"}

    act_as_worker(api, nats, fail)
    code, out, err = finish(proc)
    assert code == 1
    assert json.loads(out) == {"error": "SystemExit: 3"}
    assert "FAILED: SystemExit: 3" in err
    assert seen["tool"] == {
        "kind": "python",
        "code": "raise SystemExit(3)",
        "args": {"n": 3, "s": "hello", "j": {"a": [1, 2]}},
    }
    assert seen["timeout"] == 30
    command = execution(api, seen["execution_id"])["commands"][0]
    assert command["max_attempts"] == 2


def test_submit_file_and_status(server: Server, api: httpx.Client, tmp_path: Path) -> None:
    spec = tmp_path / "cmd.yaml"
    spec.write_text("tool:\n  kind: shell\n  command: echo hi\ntimeout: 30\nmax_attempts: 3\n")
    code, out, err = finish(noetl(server, "submit", "--file", str(spec)))
    assert code == 0, err
    execution_id = out.strip()
    command = execution(api, execution_id)["commands"][0]
    assert (command["tool"], command["timeout"], command["max_attempts"]) == (
        {"kind": "shell", "command": "echo hi"},
        30,
        3,
    )
    as_json = tmp_path / "cmd.json"
    as_json.write_text(json.dumps({"tool": {"kind": "http", "url": "http://example.invalid/x"}}))
    code, out, _ = finish(noetl(server, "submit", "--file", str(as_json), "--max-attempts", "5"))
    assert code == 0
    assert execution(api, out.strip())["commands"][0]["max_attempts"] == 5

    code, out, err = finish(noetl(server, "status", execution_id))
    assert code == 0, err
    assert out.splitlines()[0] == f"execution {execution_id}  RUNNING"
    assert "shell: echo hi" in out
    assert "created" in out.splitlines()[-1]
    code, out, _ = finish(noetl(server, "status", execution_id, "--json"))
    assert json.loads(out)["execution_id"] == execution_id
    code, out, _ = finish(noetl(server, "status"))
    assert code == 0
    assert execution_id in out
    code, _, err = finish(noetl(server, "status", "00000000-0000-4000-8000-000000000000"))
    assert code == 1
    assert err.strip() == "noetl: no execution 00000000-0000-4000-8000-000000000000"


def test_submit_refused_by_the_server_is_one_line(server: Server, tmp_path: Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"tool": {"kind": "teleport"}}))
    code, out, err = finish(noetl(server, "submit", "--file", str(spec)))
    assert (code, out) == (2, "")
    assert err.startswith("noetl: the server refused the request: tool:")
    assert len(err.strip().splitlines()) == 1


def test_an_http_method_the_worker_cannot_send_is_refused_by_the_server(
    server: Server, api: httpx.Client
) -> None:
    code, out, err = finish(
        noetl(server, "submit", "http", "--url", "http://127.0.0.1:9/", "--method", "PURGE")
    )
    assert (code, out) == (2, "")
    assert err.strip() == (
        "noetl: the server refused the request: tool.method: Value error, must be one of "
        "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
    )
    assert api.get("/api/executions").json()["items"] == []  # nothing was created


def test_submit_with_token(server_env: dict[str, str], make_server: Callable[..., Server]) -> None:
    server = make_server({**server_env, "NOETL_API_TOKEN": "tok"})
    code, _, err = finish(noetl(server, "submit", "shell", "--command", "true"))
    assert code == 2
    assert "refused the API token" in err
    code, out, err = finish(noetl(server, "submit", "shell", "--command", "true", token="tok"))
    assert code == 0, err
    assert len(out.strip()) == 36
