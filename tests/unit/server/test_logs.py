"""One logging setup: text and json lines, uvicorn routed through it."""

from __future__ import annotations

import io
import json
import logging

from noetl.logs import configure_logging


def test_text_lines_leave_the_name_to_the_listener() -> None:
    out = io.StringIO()
    configure_logging("info", "text", "server", stream=out)
    logging.getLogger("noetl.x").info("hello %s", "there")
    logging.getLogger("noetl.x").debug("hidden")
    line = out.getvalue().strip()
    assert "|" not in line  # under noetl run, the event listener writes `server | ` in front
    assert line.endswith(" INFO noetl.x: hello there")
    assert "hidden" not in out.getvalue()


def test_json_lines_are_one_object_each_with_extras() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", "worker_00", stream=out)
    logging.getLogger("noetl.y").warning("two\nlines", extra={"command_id": "c1"})
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("noetl.y").exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "two\nlines"
    assert (first["level"], first["process"], first["logger"], first["command_id"]) == (
        "warning",
        "worker_00",
        "noetl.y",
        "c1",
    )
    assert "ValueError: boom" in second["exception"]


def test_uvicorn_loggers_go_through_the_same_handler() -> None:
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler(io.StringIO()))
    out = io.StringIO()
    configure_logging("info", "json", "server", stream=out)
    logging.getLogger("uvicorn.error").info("Started server process")
    assert logging.getLogger("uvicorn.error").handlers == []
    assert json.loads(out.getvalue())["logger"] == "uvicorn.error"
