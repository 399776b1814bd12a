"""`noetl status` text: the execution, its commands and events, one line each."""

from __future__ import annotations

from noetl.client.format import execution_text, executions_table
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


def test_executions_table() -> None:
    page = {
        "items": [
            {"execution_id": "e1", "status": "RUNNING", "created_at": None, "updated_at": None},
            {"execution_id": "e2", "status": "FAILED", "path": "demo/x", "version": 2},
        ],
        "total": 3,
        "limit": 1,
        "offset": 0,
    }
    lines = executions_table(page).splitlines()
    assert lines[0].split() == ["EXECUTION", "STATUS", "CREATED", "UPDATED", "PLAYBOOK"]
    assert lines[1].split() == ["e1", "RUNNING", "-", "-", "-"]
    assert lines[2].split() == ["e2", "FAILED", "-", "-", "demo/x", "v2"]
    assert lines[3] == "(2 of 3; use --limit/--offset for more)"
    assert executions_table({"items": []}) == "no executions"
