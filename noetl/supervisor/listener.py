"""supervisord event listener: program output with names, and a stop when a program cannot stay up.

Run by supervisord as ``python -m noetl.supervisor.listener --failure-file PATH --format text|json``.
It speaks supervisord's listener protocol on stdin/stdout (so it must never print anything else
there) and handles two kinds of events:

- ``PROCESS_LOG_*``: output of a program, turned into ``name | line`` (text) or one JSON object per
  line with a ``process`` field (json), and handed back to supervisord to write (see ``output.py``).
- ``PROCESS_STATE_*``: a program that goes FATAL (it died within startsecs, startretries times) or
  crashes ``CRASH_LIMIT`` times within ``CRASH_WINDOW`` seconds after it had started makes the
  listener write one line naming it to the failure file and send SIGTERM to supervisord, which stops
  everything. supervisord itself always exits 0, so the launcher reads that file for its exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from noetl.logs import json_line
from noetl.supervisor.output import OK, encode

# Crash loop: this many unexpected exits of one process within this many seconds. A worker killed
# by the OOM killer once is restarted; one that dies every few seconds is broken and must be seen.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0


def parse_tokens(line: bytes) -> dict[str, str]:
    """``a:1 b:2`` -> {"a": "1", "b": "2"} (the header format of supervisord events)."""
    tokens = {}
    for token in line.decode("utf-8", "replace").split():
        key, _, value = token.partition(":")
        tokens[key] = value
    return tokens


class LineFormatter:
    """Turns chunks of a program's output into complete, prefixed lines."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.partial: dict[tuple[str, str], bytes] = defaultdict(bytes)

    def feed(self, process: str, channel: str, data: bytes) -> bytes:
        key = (process, channel)
        buffered = self.partial.pop(key, b"") + data
        *lines, rest = buffered.split(b"\n")
        if rest:
            self.partial[key] = rest
        return b"".join(self.format(process, channel, line) for line in lines)

    def flush(self, process: str) -> bytes:
        out = b""
        for channel in ("stdout", "stderr"):
            rest = self.partial.pop((process, channel), b"")
            if rest:
                out += self.format(process, channel, rest)
        return out

    def format(self, process: str, channel: str, line: bytes) -> bytes:
        text = line.decode("utf-8", "replace").rstrip("\r")
        if self.fmt == "text":
            return f"{process} | {text}\n".encode()
        record: dict[str, object] | None = None
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                record = parsed
        if record is None:
            level = "info" if channel == "stdout" else "error"
            return (json_line({"level": level, "process": process, "message": text}) + "\n").encode()
        # A program's own JSON line (noetl's programs write them with json_line) passes through.
        record.setdefault("process", process)
        return (json.dumps(record, ensure_ascii=False) + "\n").encode()

    def event(self, process: str, **fields: object) -> bytes:
        """A line about a process that comes from the listener itself (json format only)."""
        return (json_line({"process": process, **fields}) + "\n").encode()


class CrashWatch:
    """Decides when a program cannot stay up."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.exits: dict[str, deque[float]] = defaultdict(deque)

    def fatal(self, process: str) -> str:
        return (
            f"program {process} could not start: it exited within its start time again and again "
            "(FATAL); its last lines are above"
        )

    def unexpected_exit(self, process: str) -> str | None:
        now = self.clock()
        exits = self.exits[process]
        exits.append(now)
        while exits and exits[0] < now - CRASH_WINDOW:
            exits.popleft()
        if len(exits) >= CRASH_LIMIT:
            return (
                f"program {process} keeps crashing: {len(exits)} unexpected exits within "
                f"{CRASH_WINDOW:g} s; its last lines are above"
            )
        return None


class Listener:
    def __init__(self, failure_file: Path, fmt: str, stop_supervisord: Callable[[], None]) -> None:
        self.failure_file = failure_file
        self.lines = LineFormatter(fmt)
        self.crashes = CrashWatch()
        self.stop_supervisord = stop_supervisord
        self.failed = False

    def handle(self, headers: dict[str, str], payload: bytes) -> bytes:
        """One event -> the RESULT body for supervisord."""
        name = headers.get("eventname", "")
        head, _, data = payload.partition(b"\n")
        fields = parse_tokens(head)
        process = fields.get("processname", "?")
        if name.startswith("PROCESS_LOG_"):
            channel = fields.get("channel", "stdout")
            out = self.lines.feed(process, channel, data)
            return encode(channel, out) if out else OK
        if name.startswith("PROCESS_STATE_"):
            return self.on_state(name.removeprefix("PROCESS_STATE_"), process, fields)
        return OK

    def on_state(self, state: str, process: str, fields: dict[str, str]) -> bytes:
        out = self.lines.flush(process)
        problem = None
        if state == "FATAL":
            problem = self.crashes.fatal(process)
        elif state == "EXITED" and fields.get("expected") == "0":
            problem = self.crashes.unexpected_exit(process)
        if self.lines.fmt == "json":
            out += self.lines.event(process, event="state", state=state, previous=fields.get("from_state"))
        if problem and not self.failed:
            self.failed = True
            self.record_failure(problem)
            if self.lines.fmt == "json":
                out += self.lines.event(process, level="error", message=problem)
            else:
                out += f"noetl | {problem}; stopping everything\n".encode()
            self.stop_supervisord()
        return encode("stderr" if problem else "stdout", out) if out else OK

    def record_failure(self, line: str) -> None:
        tmp = self.failure_file.with_suffix(".tmp")
        tmp.write_text(line + "\n", encoding="utf-8")
        os.replace(tmp, self.failure_file)


def serve(listener: Listener, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """The listener protocol loop: READY, read one event, answer RESULT; until stdin closes."""
    while True:
        stdout.write(b"READY\n")
        stdout.flush()
        header = stdin.readline()
        if not header:
            return
        headers = parse_tokens(header)
        payload = stdin.read(int(headers.get("len", "0")))
        body = listener.handle(headers, payload)
        stdout.write(b"RESULT %d\n" % len(body) + body)
        stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noetl.supervisor.listener")
    parser.add_argument("--failure-file", type=Path, required=True)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    supervisord = os.getppid()

    def stop_supervisord() -> None:
        os.kill(supervisord, signal.SIGTERM)

    listener = Listener(args.failure_file, args.format, stop_supervisord)
    with contextlib.suppress(BrokenPipeError):  # supervisord went away first
        serve(listener, sys.stdin.buffer, sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
