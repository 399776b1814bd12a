"""`noetl status` text: the execution, its commands and events, one line each."""

from __future__ import annotations

from noetl.client.format import catalog_table, clean, event_line, execution_text, executions_table
from noetl.tools.registry import describe as describe_tool

EXECUTION = {
    "execution_id": "e1",
    "status": "COMPLETED",
    "created_at": "2026-01-02T03:04:05.678901Z",
    "updated_at": "2026-01-02T03:04:06.5Z",
    "commands": [
        {
            "command_id": "c1",
            "status": "completed",
            "attempt": 2,
            "max_attempts": 3,
            "worker_id": "w",
            "tool": {"kind": "shell", "command": ["echo", "hi"]},
            "result": {"stdout": "hi\n"},
            "error": None,
        }
    ],
    "events": [
        {
            "type": "created",
            "attempt": 0,
            "worker_id": None,
            "payload": {},
            "created_at": "2026-01-02T03:04:05Z",
        },
        {
            "type": "completed",
            "attempt": 2,
            "worker_id": "w",
            "payload": {"result": "x" * 300},
            "created_at": "2026-01-02T03:04:06.5+00:00",
        },
    ],
}


def test_execution_text() -> None:
    lines = execution_text(EXECUTION).splitlines()
    assert lines[0] == "execution e1  COMPLETED"
    assert lines[1] == "  created 2026-01-02 03:04:05.678  updated 2026-01-02 03:04:06.5"
    assert lines[2] == "command c1  completed  attempt 2  max_attempts 3  worker w"
    assert lines[3] == "  shell: echo hi"
    assert lines[4] == '  result: {"stdout":"hi\\n"}'
    assert lines[6].startswith("  2026-01-02 03:04:05  created    attempt 0  -")
    assert lines[7].endswith("...") and len(lines[7]) < 200


def test_describe_tool() -> None:
    assert describe_tool({"kind": "python", "code": "\n  x = 1\ny = 2"}) == "python: x = 1"
    assert describe_tool({"kind": "python", "code": "   "}) == "python: "
    assert describe_tool({"kind": "http", "url": "https://h"}) == "http: GET https://h"
    # `noetl status` shows where a request went, never the token in its query string
    assert (
        describe_tool({"kind": "http", "url": "https://u:pw@h/x?token=a&b=c"})
        == "http: GET https://u:***@h/x?***"
    )


def test_executions_table() -> None:
    page = {
        "items": [
            {"execution_id": "e1", "status": "RUNNING", "created_at": None, "updated_at": None},
            {"execution_id": "e2", "status": "FAILED", "path": "demo/x", "version": 2},
        ],
        "total": 3,
        "limit": 2,
        "offset": 0,
        "next": "CUR",
    }
    lines = executions_table(page).splitlines()
    assert lines[0].split() == ["EXECUTION", "STATUS", "CREATED", "UPDATED", "PLAYBOOK"]
    assert lines[1].split() == ["e1", "RUNNING", "-", "-", "-"]
    assert lines[2].split() == ["e2", "FAILED", "-", "-", "demo/x", "v2"]
    assert lines[3] == "(2 shown of 3; more with --cursor CUR)"
    capped = executions_table({**page, "total": 10000, "total_capped": True}).splitlines()
    assert capped[3] == "(2 shown of 10000+; more with --cursor CUR)"
    assert len(executions_table({**page, "next": None}).splitlines()) == 3  # the last page
    assert executions_table({"items": []}) == "no executions"


ATTACKS = "\x1b[2J\x1b[H\x1b]0;owned\x07\x1b[31mred\x1b[0m\x9b2J\rback\x08\x00\x7f end"


def test_terminal_controls_never_reach_the_terminal() -> None:
    assert clean(ATTACKS) == "redback end"
    assert clean("line one\n\tline two") == "line one\n\tline two"  # layout stays
    execution = {
        "execution_id": "e1",
        "status": "FAILED",
        "commands": [
            {
                "command_id": "c1",
                "status": "failed",
                "attempt": 1,
                "max_attempts": 1,
                "tool": {"kind": "shell", "command": "printf '\\033[2J'"},
                "result": ATTACKS,
                "error": ATTACKS,
            }
        ],
        "events": [{"type": "failed" + ATTACKS, "attempt": 1, "payload": {"stdout": ATTACKS}}],
    }
    playbook = {
        "execution_id": "e2",
        "status": "FAILED",
        "path": ATTACKS,
        "steps": [{"name": "s" + ATTACKS, "status": "failed", "error": ATTACKS}],
        "error": ATTACKS,
    }
    for text in (
        execution_text(execution),
        execution_text(playbook),
        executions_table({"items": [{"execution_id": ATTACKS, "status": "RUNNING", "path": ATTACKS}]}),
        catalog_table([{"path": ATTACKS, "version": 1, "description": ATTACKS}]),
        event_line({"event_type": "call.error", "node_name": ATTACKS, "error": ATTACKS}) or "",
    ):
        assert "red" in text
        assert not any(ch in text for ch in "\x1b\x9b\r\x08\x00\x07\x7f"), repr(text)
