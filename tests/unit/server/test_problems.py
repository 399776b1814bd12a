"""Validation errors read as one line naming the field."""

from __future__ import annotations

from noetl.protocol.types import describe_validation
from noetl.tools.registry import TOOL_KINDS


def test_json_decode_error() -> None:
    errors = [
        {
            "type": "json_invalid",
            "loc": ("body", 1),
            "msg": "JSON decode error",
            "ctx": {"error": "Expecting value"},
        }
    ]
    assert describe_validation(errors) == "the body is not valid JSON (Expecting value at character 1)"


def test_field_path_drops_body_and_union_branch() -> None:
    errors = [{"type": "missing", "loc": ("body", "tool", "shell", "command"), "msg": "Field required"}]
    assert describe_validation(errors, tags=TOOL_KINDS) == "tool.command: Field required"


def test_query_parameter_and_limit() -> None:
    errors = [{"loc": ("query", "limit"), "msg": f"bad {i}"} for i in range(5)]
    assert describe_validation(errors) == "limit: bad 0; limit: bad 1; limit: bad 2; and 2 more"
