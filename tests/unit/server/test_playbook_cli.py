"""The pure parts of `noetl register/exec/status` for playbooks: payloads, base64 content, the step
lines of --wait (plain and live), the steps table, and following events to the end."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest

from noetl.cli.exec import Progress, outcome_line
from noetl.cli.playbook_files import build_payload, playbooks_in
from noetl.client import ApiClient
from noetl.client.follow import follow
from noetl.client.format import catalog_table, event_line, execution_text
from noetl.errors import ConfigError
from noetl.server.routes.catalog import decode_content

YAML = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: x}\n"


def test_payload_from_json_a_file_and_sets(tmp_path: Path) -> None:
    assert build_payload('{"a": 1, "b": "x"}', ["b=2", "c=hello", 'd={"k": [1]}']) == {
        "a": 1,
        "b": 2,
        "c": "hello",
        "d": {"k": [1]},
    }
    (tmp_path / "p.yaml").write_text("a: 1\nlist: [x, y]\n")
    assert build_payload(f"@{tmp_path / 'p.yaml'}", []) == {"a": 1, "list": ["x", "y"]}
    (tmp_path / "p.json").write_text('{"a": true}')
    assert build_payload(f"@{tmp_path / 'p.json'}", ["a=false"]) == {"a": False}
    assert build_payload(None, []) == {}


@pytest.mark.parametrize(
    ("payload", "sets", "message"),
    [
        ("{nope", [], "--payload is not valid JSON"),
        ("[1, 2]", [], "--payload must be an object"),
        (None, ["=3"], "--set '=3': expected KEY=VALUE"),
        (None, ["novalue"], "--set 'novalue': expected KEY=VALUE"),
        ("@/nonexistent/p.json", [], "cannot read it"),
    ],
)
def test_payload_mistakes_are_one_line(payload: str | None, sets: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        build_payload(payload, sets)
    assert "\n" not in str(caught.value)


def test_a_directory_of_playbooks(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text(YAML)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yaml").write_text(YAML)
    (tmp_path / "notes.txt").write_text("no")
    assert playbooks_in(tmp_path) == [tmp_path / "b.yml", tmp_path / "sub" / "a.yaml"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"holds no \.yaml"):
        playbooks_in(empty)
    with pytest.raises(ConfigError, match="is not a directory"):
        playbooks_in(tmp_path / "b.yml")


def test_content_is_yaml_or_base64_of_it() -> None:
    assert decode_content(YAML) == YAML
    assert decode_content(base64.b64encode(YAML.encode()).decode()) == YAML
    assert decode_content(base64.urlsafe_b64encode(YAML.encode()).decode().rstrip("=")) == YAML
    long = YAML + "# " + "x" * 100 + "\n"
    wrapped = base64.encodebytes(long.encode()).decode()  # lines of 76 characters, as `base64` prints
    assert wrapped.count("\n") > 1 and decode_content(wrapped) == long
    # Looks like base64 but is not UTF-8 text once decoded: taken as it is (and refused as YAML later).
    assert decode_content("////") == "////"
    assert decode_content("start") == "start"


def event(
    kind: str, step: str | None = None, status: str = "RUNNING", error: str | None = None
) -> dict[str, Any]:
    return {"event_id": 1, "event_type": kind, "node_name": step, "status": status, "error": error}


def test_event_lines() -> None:
    assert event_line(event("step.enter", "fetch")) == "step fetch: started"
    assert event_line(event("step.exit", "fetch", "COMPLETED")) == "step fetch: completed"
    assert (
        event_line(event("call.error", "fetch", "FAILED", "boom\nline 2"))
        == "step fetch: failed: boom\\nline 2"
    )
    assert event_line(event("playbook.failed", None, "FAILED", "step 'fetch' failed")) == (
        "execution FAILED: step 'fetch' failed"
    )
    assert event_line(event("call.done", "fetch")) is None
    assert event_line(event("playbook.initialized")) is None


def test_progress_plain_lines_and_a_live_line() -> None:
    plain = io.StringIO()
    progress = Progress(plain, live=False)
    for e in (event("step.enter", "a"), event("call.done", "a"), event("step.exit", "a", "COMPLETED")):
        progress.show(e)
    progress.close()
    assert plain.getvalue() == "step a: started\nstep a: completed\n"
    live = io.StringIO()
    progress = Progress(live, live=True)
    progress.show(event("step.enter", "a"))
    progress.show(event("step.exit", "a", "COMPLETED"))
    progress.close()
    assert (
        live.getvalue() == "\r\033[K[0 steps done] step a: started\r\033[K[1 steps done] step a: completed\n"
    )


EXECUTION = {
    "execution_id": "e1",
    "status": "FAILED",
    "path": "demo/flow",
    "version": 3,
    "created_at": "2026-01-02T03:04:05.000000Z",
    "updated_at": "2026-01-02T03:04:09.000000Z",
    "error": "step 'fetch' failed: HTTP 500",
    "result": None,
    "steps": [
        {
            "name": "start",
            "status": "done",
            "attempts": 1,
            "started_at": "2026-01-02T03:04:05.100000Z",
            "finished_at": "2026-01-02T03:04:05.350000Z",
            "result": {"n": 1},
            "error": None,
        },
        {
            "name": "fetch",
            "status": "failed",
            "attempts": 2,
            "started_at": "2026-01-02T03:04:05.400000Z",
            "finished_at": "2026-01-02T03:04:08.400000Z",
            "result": None,
            "error": "HTTP 500",
        },
        {"name": "later", "status": "running", "attempts": 0, "started_at": None, "finished_at": None},
    ],
}


def test_a_playbook_execution_as_text() -> None:
    lines = execution_text(EXECUTION).splitlines()
    assert lines[0] == "execution e1  FAILED  demo/flow version 3"
    assert lines[2].split() == ["STEP", "STATUS", "DURATION", "ATTEMPTS", "ITERATIONS"]
    assert lines[3].split() == ["start", "done", "0.25s", "1"]
    assert lines[4].split() == ["fetch", "failed", "3.00s", "2"]
    assert lines[5].split() == ["later", "running", "-", "0"]
    assert lines[6] == "step fetch failed: HTTP 500"
    assert lines[7] == "error: step 'fetch' failed: HTTP 500"
    assert outcome_line(EXECUTION) == "execution e1 FAILED: step 'fetch' failed: HTTP 500"
    done = {**EXECUTION, "status": "COMPLETED", "error": None, "result": {"n": 2}}
    assert outcome_line(done) == 'execution e1 COMPLETED: {"n":2}'


def test_catalog_table() -> None:
    entries = [{"path": "demo/flow", "version": 3, "created_at": None, "description": "a flow"}]
    lines = catalog_table(entries).splitlines()
    assert lines[0].split() == ["PATH", "VERSION", "CREATED", "DESCRIPTION"]
    assert lines[1].split() == ["demo/flow", "3", "-", "a", "flow"]
    assert "register a playbook" in catalog_table([])


def test_follow_shows_every_event_once_then_returns_the_ended_execution() -> None:
    pages = [
        [event("step.enter", "a") | {"event_id": 1}],
        [],  # quiet: the execution is still running
        [event("step.exit", "a", "COMPLETED") | {"event_id": 2}],
        [],  # quiet: the execution has ended ...
        [event("playbook.completed", None, "COMPLETED") | {"event_id": 3}],  # ... and one more came
    ]
    statuses = ["RUNNING", "COMPLETED"]
    afters: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            afters.append(request.url.params["after"])
            return httpx.Response(200, json={"items": pages.pop(0)})
        return httpx.Response(200, json={"execution_id": "e1", "status": statuses.pop(0)})

    seen: list[str] = []
    client = ApiClient("http://noetl.test", transport=httpx.MockTransport(handler))
    ended = follow(client, "e1", lambda e: seen.append(e["event_type"]), sleep=lambda _: None)
    assert ended["status"] == "COMPLETED"
    assert seen == ["step.enter", "step.exit", "playbook.completed"]
    assert afters == ["0", "1", "1", "2", "2"]
