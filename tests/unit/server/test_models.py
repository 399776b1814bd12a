"""Request models: what is accepted, what is refused before it could fail in PostgreSQL."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from noetl.server.models import EventRequest, SubmitRequest, WorkerHeartbeat
from noetl.tools.registry import tool_spec


def submit(tool: dict[str, Any], **fields: Any) -> SubmitRequest:
    return SubmitRequest.model_validate({"tool": tool, **fields})


def test_defaults_and_tool_spec_keeps_what_was_given() -> None:
    req = submit({"kind": "shell", "command": ["echo", "hi"], "env": {"A": "1"}})
    assert (req.timeout, req.max_attempts) == (300, 3)
    assert tool_spec(req.tool) == {"kind": "shell", "command": ["echo", "hi"], "env": {"A": "1"}}


def test_http_tool_method_is_upper_case_and_json_keeps_its_name() -> None:
    req = submit({"kind": "http", "url": "https://example.com/x", "method": "post", "json": {"a": None}})
    assert tool_spec(req.tool) == {
        "kind": "http",
        "url": "https://example.com/x",
        "method": "POST",
        "json": {"a": None},
    }


def test_python_tool_args_keep_json_types() -> None:
    req = submit({"kind": "python", "code": "print(1)", "args": {"n": 3, "l": [1, "x"], "o": {"k": True}}})
    assert tool_spec(req.tool)["args"] == {"n": 3, "l": [1, "x"], "o": {"k": True}}


@pytest.mark.parametrize(
    "tool",
    [
        {"kind": "teleport"},
        {"command": "echo"},
        {"kind": "shell"},
        {"kind": "shell", "command": ""},
        {"kind": "shell", "command": []},
        {"kind": "shell", "command": "x", "extra": 1},
        {"kind": "shell", "command": "a\x00b"},
        {"kind": "shell", "command": "x", "env": {"A\x00": "1"}},
        {"kind": "python", "code": ""},
        {"kind": "python", "code": "x", "args": {"n": math.nan}},
        {"kind": "python", "code": "x", "args": {"deep": [{"s": "\x00"}]}},
        {"kind": "python", "code": "x", "args": {"inf": [math.inf]}},
        {"kind": "http", "url": "ftp://host/x"},
        {"kind": "http", "url": "https://host", "method": "GET /"},
        {"kind": "http", "url": "https://host", "timeout": 0},
    ],
)
def test_bad_tools_are_refused(tool: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        submit(tool)


@pytest.mark.parametrize(
    "fields", [{"timeout": 0}, {"timeout": math.inf}, {"max_attempts": 0}, {"max_attempts": 101}]
)
def test_bad_limits_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        submit({"kind": "shell", "command": "x"}, **fields)


def test_failed_event_needs_a_readable_error() -> None:
    ok = EventRequest.model_validate(
        {"worker_id": "w", "attempt": 1, "lease": "s", "type": "failed", "payload": {"error": "boom"}}
    )
    assert ok.seq == 0
    for payload in ({}, {"error": 3}):
        with pytest.raises(ValidationError):
            EventRequest.model_validate(
                {"worker_id": "w", "attempt": 1, "lease": "s", "type": "failed", "payload": payload}
            )


@pytest.mark.parametrize(
    "body",
    [
        {"worker_id": "w", "attempt": 0, "type": "started"},
        {"worker_id": "w", "attempt": 2**31, "type": "started"},  # beyond PostgreSQL's integer
        {"worker_id": "", "attempt": 1, "type": "started"},
        {"worker_id": "w", "attempt": 1, "type": "claimed"},  # server-only event type
        {"worker_id": "w", "attempt": 1, "type": "progress", "seq": -1},
    ],
)
def test_bad_events_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EventRequest.model_validate(body)


def test_worker_heartbeat_running_is_a_list_of_ids() -> None:
    assert WorkerHeartbeat.model_validate({}).running == []
    with pytest.raises(ValidationError):
        WorkerHeartbeat.model_validate({"running": "c1"})
