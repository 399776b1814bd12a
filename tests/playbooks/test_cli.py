"""`noetl register`, `catalog`, `exec`, `status` and `cancel` as a user runs them, against a real
server and workers: outputs, exit codes, and one line for each mistake."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.playbooks.conftest import EXAMPLES, ROOT, Playbooks
from tests.services import wait_until
from tests.worker.harness import clean_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def noetl(playbooks: Playbooks, *args: str, timeout: float = 120) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "noetl", *args],
        env=clean_env(NOETL_SERVER_URL=playbooks.url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr


def test_register_a_directory_then_list_and_get(playbooks: Playbooks) -> None:
    code, out, err = noetl(playbooks, "register", "playbook", "-d", str(EXAMPLES))
    assert code == 0, err
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert len(out.splitlines()) == len(examples)
    assert all("version 1" in line for line in out.splitlines())
    code, out, _ = noetl(playbooks, "catalog", "list")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["PATH", "VERSION", "CREATED"]
    assert {f"examples/{p.stem}" for p in examples} <= {line.split()[0] for line in out.splitlines()[1:]}
    code, out, _ = noetl(playbooks, "catalog", "list", "--json")
    assert {e["path"] for e in json.loads(out)["entries"]} >= {f"examples/{p.stem}" for p in examples}
    code, out, _ = noetl(playbooks, "catalog", "get", "examples/hello")
    assert code == 0 and out == (EXAMPLES / "hello.yaml").read_text()
    code, out, _ = noetl(playbooks, "catalog", "get", "examples/hello", "--version", "1", "--json")
    assert json.loads(out)["version"] == 1
    code, _, err = noetl(playbooks, "catalog", "get", "examples/hello", "--version", "7")
    assert code == 1 and err == "noetl: playbook 'examples/hello' has no version 7 (latest is 1)\n"


def test_register_a_broken_playbook_is_one_line_exit_2(playbooks: Playbooks, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: b, path: tests/b}\n"
        "workflow:\n  - step: start\n    next: nowhere\n"
    )
    for args in (["register", "playbook", "-f", str(broken)], ["catalog", "register", str(broken)]):
        code, out, err = noetl(playbooks, *args)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1 and err.startswith(f"noetl: {broken}: ") and "nowhere" in err
        assert "Traceback" not in err
    code, _, err = noetl(playbooks, "register", "playbook", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read it" in err


def test_exec_a_file_and_wait(playbooks: Playbooks) -> None:
    code, out, err = noetl(playbooks, "exec", str(EXAMPLES / "hello.yaml"), "--set", "name=Ada", "--wait")
    assert code == 0, err
    lines = out.splitlines()
    # Plain lines (not a terminal): each step as it starts and ends, then the outcome.
    assert lines[:4] == [
        "step start: started",
        "step start: completed",
        "step end: started",
        "step end: completed",
    ]
    assert lines[-1].endswith('COMPLETED: {"length":11,"message":"Hello, Ada!"}')
    execution_id = lines[-1].split()[1]

    code, out, _ = noetl(playbooks, "status", execution_id)
    assert code == 0
    text = out.splitlines()
    assert text[0] == f"execution {execution_id}  COMPLETED  examples/hello version 1"
    assert text[2].split() == ["STEP", "STATUS", "DURATION", "ATTEMPTS", "ITERATIONS"]
    assert text[3].split()[0::3] == ["start", "1"] and text[3].split()[1] == "done"
    assert text[4].split()[0:2] == ["end", "done"]

    code, out, _ = noetl(
        playbooks, "exec", "examples/hello", "--payload", '{"name": "Bo"}', "--wait", "--json"
    )
    assert code == 0
    assert json.loads(out)["result"] == {"message": "Hello, Bo!", "length": 10}


def test_exec_a_failing_playbook_exits_1_and_status_names_the_error(
    playbooks: Playbooks, tmp_path: Path
) -> None:
    failing = tmp_path / "failing.yaml"
    failing.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: f, path: tests/failing}\nworkflow:\n"
        "  - step: start\n    tool: {kind: shell, command: 'echo oops >&2; exit 3'}\n"
    )
    code, out, err = noetl(playbooks, "exec", str(failing), "--wait")
    assert code == 1, err
    assert "step start: failed" in out
    execution_id = out.splitlines()[-1].split()[1]
    assert out.splitlines()[-1].startswith(f"execution {execution_id} FAILED: step 'start' failed")
    code, out, _ = noetl(playbooks, "status", execution_id)
    assert out.splitlines()[3].split()[:2] == ["start", "failed"]
    assert any(line.startswith("step start failed: ") for line in out.splitlines())


def test_exec_mistakes_are_one_line_exit_2(playbooks: Playbooks) -> None:
    code, _, err = noetl(playbooks, "exec", "tests/ghost")
    assert (code, err) == (2, "noetl: no playbook 'tests/ghost' in the catalog (register it first)\n")
    code, _, err = noetl(playbooks, "exec", "examples/hello", "--set", "novalue")
    assert (code, err) == (2, "noetl: --set 'novalue': expected KEY=VALUE\n")
    code, _, err = noetl(playbooks, "exec", "examples/hello", "--payload", "[1]")
    assert (code, err) == (2, "noetl: --payload must be an object (key: value pairs)\n")
    code, _, err = noetl(playbooks, "exec", str(EXAMPLES / "hello.yaml"), "--version", "1")
    assert code == 2 and "--version is for a catalog path" in err


def test_cancel_a_running_execution(playbooks: Playbooks, tmp_path: Path) -> None:
    slow = tmp_path / "slow.yaml"
    token = uuid.uuid4().hex
    slow.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: s, path: tests/slow}\nworkflow:\n"
        f"  - step: start\n    tool: {{kind: shell, command: 'sleep 300 # {token}'}}\n"
    )
    code, out, err = noetl(playbooks, "exec", str(slow))
    assert code == 0, err
    execution_id = out.strip()
    wait_until(lambda: playbooks.execution(execution_id)["steps"][0]["status"] == "running", 30, "running")
    code, out, err = noetl(playbooks, "cancel", execution_id, "--reason", "enough")
    assert (code, out) == (0, f"execution {execution_id} CANCELLED\n"), err
    code, _, err = noetl(playbooks, "cancel", execution_id)
    assert code == 1 and err == f"noetl: execution {execution_id} already ended: CANCELLED\n"
    code, _, err = noetl(playbooks, "cancel", "not-an-id")
    assert code == 2 and "is not an execution id" in err
