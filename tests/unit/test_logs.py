"""One JSON line format for every JSON line noetl writes: ``time`` in RFC 3339 UTC ending in ``Z``."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

from noetl.logs import configure_logging, json_line, timestamp
from noetl.settings import load_settings
from noetl.supervisor.embedded import Plan
from noetl.supervisor.launch import announce
from noetl.supervisor.listener import LineFormatter, Listener

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _time_of(line: str) -> datetime:
    record = json.loads(line)
    assert RFC3339_Z.match(record["time"]), record["time"]
    return datetime.fromisoformat(record["time"])


def test_timestamp_is_utc_with_milliseconds_and_z() -> None:
    assert timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert timestamp(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"
    assert RFC3339_Z.match(timestamp())


def test_json_line_puts_time_first_and_keeps_the_fields() -> None:
    line = json_line({"level": "info", "process": "p", "message": "m", "path": Path("/x")}, 0)
    assert "\n" not in line
    assert list(json.loads(line)) == ["time", "level", "process", "message", "path"]
    assert json.loads(line)["path"] == "/x"  # what JSON cannot hold is written as text
    assert json.loads(json_line({"message": "two\nlines"}))["message"] == "two\nlines"


def test_every_writer_uses_the_same_time_format(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    # The programs' logging.
    out = io.StringIO()
    configure_logging("info", "json", "worker_00", stream=out)
    logging.getLogger("noetl.t").info("hello")
    lines: list[str] = [out.getvalue().strip()]
    # The event listener: a program's plain output line, and its own state lines.
    listener = LineFormatter("json")
    lines.append(listener.feed("server", "stderr", "plain\n").strip())
    lines.append(listener.event("server", event="state", state="RUNNING").strip())
    failing = Listener(tmp_path / "failure", "json", lambda: None)
    lines.extend(failing.on_state("FATAL", "worker_01", {}).split("\n", 1)[1].splitlines())
    # The launcher's start line.
    announce_out = io.StringIO()
    settings = load_settings({"HOME": str(tmp_path), "NOETL_LOG_FORMAT": "json", "POSTGRES_HOST": "db"})
    announce(settings, announce_out, Plan(postgres=False, nats=False))
    lines.extend(announce_out.getvalue().strip().splitlines())
    assert len(lines) == 7  # logging, listener x 2, listener's state + failure lines, launcher x 2
    for line in lines:
        assert before <= _time_of(line) <= datetime.now(UTC)


def test_the_start_line_names_the_web_ui_only_when_it_is_on(tmp_path: Path) -> None:
    def start_line(**env: str) -> str:
        out = io.StringIO()
        settings = load_settings({"HOME": str(tmp_path), "POSTGRES_HOST": "db", "NOETL_PORT": "8123", **env})
        announce(settings, out, Plan(postgres=False, nats=False))
        return out.getvalue().splitlines()[0]

    assert "web UI at http://127.0.0.1:8123/" in start_line(NOETL_ENABLE_UI="true")
    assert "web UI" not in start_line()
    assert "web UI" not in start_line(NOETL_ENABLE_UI="true", NOETL_ROLE="worker")
