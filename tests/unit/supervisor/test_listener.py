"""The event listener: line prefixes, JSON lines, crash-loop detection and its protocol."""

from __future__ import annotations

import io
import json
from pathlib import Path

from noetl.supervisor.listener import CRASH_LIMIT, CRASH_WINDOW, CrashWatch, LineFormatter, Listener, serve
from noetl.supervisor.output import OK


def test_text_lines_get_the_process_name_and_partial_lines_wait() -> None:
    lines = LineFormatter("text")
    assert lines.feed("worker_01", "stdout", "hello\nwor") == "worker_01 | hello\n"
    assert lines.feed("worker_01", "stdout", "ld\n") == "worker_01 | world\n"
    assert lines.feed("server", "stderr", "tail") == ""
    assert lines.flush("server") == "server | tail\n"


def test_json_lines_carry_a_process_field_and_keep_json_objects() -> None:
    lines = LineFormatter("json")
    out = lines.feed("worker_00", "stdout", '{"level": "info", "message": "m"}\nplain text\n')
    first, second = (json.loads(line) for line in out.splitlines())
    assert first == {"level": "info", "message": "m", "process": "worker_00"}
    assert second["process"] == "worker_00" and second["message"] == "plain text"
    assert "time" in second


def test_crash_watch_counts_only_exits_inside_the_window() -> None:
    now = [0.0]
    watch = CrashWatch(clock=lambda: now[0])
    for _ in range(CRASH_LIMIT - 1):
        assert watch.unexpected_exit("worker_00") is None
        now[0] += 1
    assert watch.unexpected_exit("worker_01") is None  # another process does not count
    now[0] += CRASH_WINDOW  # the old exits age out
    assert watch.unexpected_exit("worker_00") is None
    for _ in range(CRASH_LIMIT - 2):
        watch.unexpected_exit("worker_00")
    message = watch.unexpected_exit("worker_00")
    assert message is not None and message.startswith("program worker_00 keeps crashing")


def _event(name: str, payload: str) -> bytes:
    # As supervisord writes it (process.py _eventEnvelope): len counts the characters of the
    # decoded payload, and the whole envelope goes out UTF-8 encoded.
    envelope = (
        f"ver:3.0 server:supervisor serial:1 pool:listener poolserial:1 eventname:{name} len:{len(payload)}\n"
    )
    return (envelope + payload).encode("utf-8")


def _serve(listener: Listener, stdin: bytes) -> bytes:
    """Run the protocol loop over byte streams, as main() does over the pipes."""
    out = io.BytesIO()
    text_out = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    serve(listener, io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", newline=""), text_out)
    return out.getvalue()


def test_protocol_logs_and_fatal_stop(tmp_path: Path) -> None:
    stopped: list[bool] = []
    failure = tmp_path / "failure"
    listener = Listener(failure, "text", lambda: stopped.append(True))
    replies = _serve(
        listener,
        _event("PROCESS_LOG_STDOUT", "processname:server groupname:noetl pid:7 channel:stdout\nup\n")
        + _event("PROCESS_STATE_RUNNING", "processname:server groupname:noetl from_state:STARTING pid:7")
        + _event("PROCESS_STATE_FATAL", "processname:worker_00 groupname:noetl from_state:BACKOFF"),
    )
    assert replies.startswith(b"READY\nRESULT 19\nstdout\nserver | up\n")
    assert b"RESULT 2\nOK" in replies
    assert stopped == [True]
    assert failure.read_text().startswith("program worker_00 could not start")
    assert replies.endswith(b"READY\n")


def test_non_ascii_output_keeps_the_protocol_in_step(tmp_path: Path) -> None:
    # supervisord's len counts characters, its RESULT length bytes: reading len bytes cut the
    # payload short and answered an event supervisord never sent.
    listener = Listener(tmp_path / "failure", "text", lambda: None)
    replies = _serve(
        listener,
        _event("PROCESS_LOG_STDOUT", "processname:server groupname:noetl pid:7 channel:stdout\nZürich ✓\n")
        + _event("PROCESS_LOG_STDERR", "processname:worker_00 groupname:noetl pid:8 channel:stderr\nnext\n"),
    )
    first = "server | Zürich ✓\n".encode()
    second = b"worker_00 | next\n"
    assert replies == (
        b"READY\nRESULT %d\nstdout\n%s" % (len(first) + 7, first)
        + b"READY\nRESULT %d\nstderr\n%s" % (len(second) + 7, second)
        + b"READY\n"
    )


def test_unexpected_exits_trigger_one_stop(tmp_path: Path) -> None:
    stopped: list[bool] = []
    listener = Listener(tmp_path / "failure", "text", lambda: stopped.append(True))
    exited = "processname:server groupname:noetl from_state:RUNNING expected:0 pid:9"
    for _ in range(CRASH_LIMIT + 2):
        listener.handle({"eventname": "PROCESS_STATE_EXITED"}, exited)
    assert stopped == [True]
    expected_exit = "processname:worker_00 groupname:noetl from_state:RUNNING expected:1 pid:9"
    other = Listener(tmp_path / "other", "text", lambda: stopped.append(True))
    for _ in range(CRASH_LIMIT + 2):
        assert other.handle({"eventname": "PROCESS_STATE_EXITED"}, expected_exit) == OK
    assert stopped == [True]


def test_headers_read_as_supervisor_s_childutils_reads_them() -> None:
    from supervisor import childutils

    from noetl.supervisor.listener import header_fields

    for line in (
        "ver:3.0 server:supervisor serial:21 pool:listener poolserial:10 eventname:PROCESS_LOG_STDOUT len:54",
        "processname:worker_00 groupname:workers from_state:STARTING pid:4223",
        "",
    ):
        assert header_fields(line) == childutils.get_headers(line)
