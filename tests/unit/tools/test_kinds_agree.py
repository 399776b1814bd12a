"""The server and the worker agree on what every tool kind accepts.

The server validates a submitted ``tool`` as part of ``SubmitRequest``; the worker validates the
stored ``tool`` again before running it (``parse_tool``). For every kind and every field, values of
every JSON shape are tried: what one side accepts the other must accept, and what the server stores
(``tool_spec``) must read back the same on the worker.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from noetl.server.models import SubmitRequest
from noetl.tools.registry import KINDS, ToolError, parse_tool, tool_spec

# Every JSON shape, with the edge cases a kind must take a position on.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["", " ", "\x00", "GET", "purge", "http://h/x", "ftp://h", "a=b", "not id", "x"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# A valid starting point per kind, so that each test varies one field of an otherwise good tool.
BASE: dict[str, dict[str, Any]] = {
    "shell": {"kind": "shell", "command": "true"},
    "python": {"kind": "python", "code": "result = 1"},
    "http": {"kind": "http", "url": "http://127.0.0.1:9/"},
    "noop": {"kind": "noop"},
    "duckdb": {"kind": "duckdb", "query": "select 1"},
    "tasks": {"kind": "tasks", "tasks": [{"name": "a", "kind": "noop"}]},
}


def _fields(kind: str) -> list[str]:
    model = KINDS[kind].Args
    return [info.alias or name for name, info in model.model_fields.items() if name != "kind"]


FIELDS = [(kind, field) for kind in KINDS for field in _fields(kind)]


def server_accepts(tool: dict[str, Any]) -> dict[str, Any] | None:
    try:
        request = SubmitRequest.model_validate({"tool": tool})
    except ValidationError:
        return None
    return tool_spec(request.tool)


def worker_accepts(tool: dict[str, Any]) -> bool:
    try:
        parse_tool(tool)
    except ToolError:
        return False
    return True


def test_every_kind_has_a_base_and_fields() -> None:
    assert set(BASE) == set(KINDS)
    assert {kind for kind, _ in FIELDS} == set(KINDS)
    for kind, tool in BASE.items():
        assert server_accepts(tool) is not None and worker_accepts(tool), kind


@pytest.mark.parametrize(("kind", "field"), FIELDS, ids=[f"{k}.{f}" for k, f in FIELDS])
@settings(max_examples=150, deadline=None)
@given(value=JSON)
def test_server_and_worker_accept_the_same_values(kind: str, field: str, value: Any) -> None:
    tool = {**BASE[kind], field: value}
    stored = server_accepts(tool)
    assert (stored is not None) == worker_accepts(tool), f"{kind}.{field} = {value!r}"
    if stored is not None:
        # What the server stores is what the worker reads, unchanged by a second validation.
        _, args = parse_tool(stored)
        assert tool_spec(args) == stored


@pytest.mark.parametrize("kind", list(KINDS))
@settings(max_examples=50, deadline=None)
@given(name=st.text(min_size=1, max_size=8), value=JSON)
def test_unknown_fields_are_refused_by_both(kind: str, name: str, value: Any) -> None:
    if name in _fields(kind) or name in ("kind", "json_body"):
        return
    tool = {**BASE[kind], name: value}
    assert server_accepts(tool) is None
    assert not worker_accepts(tool)


@pytest.mark.parametrize("method", ["PURGE", "purge", "BREW", "get", "OPTIONS"])
def test_http_methods(method: str) -> None:
    tool = {**BASE["http"], "method": method}
    stored = server_accepts(tool)
    assert (stored is not None) == worker_accepts(tool) == (method.upper() != "PURGE" and method != "BREW")
    if stored is not None:
        assert stored["method"] == method.upper()
