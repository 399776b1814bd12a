"""supervisord event listener: program output with names, and a stop when a program cannot stay up.

Run by supervisord as ``python -m noetl.supervisor.listener --failure-file PATH --format text|json``.
It speaks supervisord's listener protocol on stdin/stdout (so it must never print anything else
there) and handles two kinds of events:

- ``PROCESS_LOG_*``: output of a program, turned into ``name | line`` (text) or one JSON object per
  line with a ``process`` field (json), and handed back to supervisord to write (see ``output.py``).
- ``PROCESS_STATE_*`` and ``TICK_5``: with ``--programs-file``, each program's state goes to the
  snapshot the server shows (``programs_feed.py``).
- ``PROCESS_STATE_*``: a program that goes FATAL (it died within startsecs, startretries times) or
  crashes ``CRASH_LIMIT`` times within ``CRASH_WINDOW`` seconds after it had started makes the
  listener write one line naming it to the failure file and send SIGTERM to supervisord, which stops
  everything. supervisord itself always exits 0, so the launcher reads that file for its exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO

from noetl.logs import json_line
from noetl.supervisor.output import OK, encode
from noetl.supervisor.programs_feed import ProgramsFeed
from noetl.supervisor.rundir import write_private

# Crash loop: this many unexpected exits of one process within this many seconds. A worker killed
# by the OOM killer once is restarted; one that dies every few seconds is broken and must be seen.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0


class LineFormatter:
    """Turns chunks of a program's output into complete, prefixed lines."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.partial: dict[tuple[str, str], str] = defaultdict(str)

    def feed(self, process: str, channel: str, data: str) -> str:
        key = (process, channel)
        buffered = self.partial.pop(key, "") + data
        *lines, rest = buffered.split("\n")
        if rest:
            self.partial[key] = rest
        return "".join(self.format(process, channel, line) for line in lines)

    def flush(self, process: str) -> str:
        out = ""
        for channel in ("stdout", "stderr"):
            rest = self.partial.pop((process, channel), "")
            if rest:
                out += self.format(process, channel, rest)
        return out

    def format(self, process: str, channel: str, line: str) -> str:
        text = line.rstrip("\r")
        if self.fmt == "text":
            return f"{process} | {text}\n"
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
            return json_line({"level": level, "process": process, "message": text}) + "\n"
        # A program's own JSON line (noetl's programs write them with json_line) passes through.
        record.setdefault("process", process)
        return json.dumps(record, ensure_ascii=False) + "\n"

    def event(self, process: str, **fields: object) -> str:
        """A line about a process that comes from the listener itself (json format only)."""
        return json_line({"process": process, **fields}) + "\n"


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


def header_fields(line: str) -> dict[str, str]:
    """``name:value name:value ...`` -> a dict, as ``supervisor.childutils.get_headers`` reads it.

    The protocol is three lines of code; ``supervisor.childutils`` brings supervisor's XML-RPC
    client with it (~100 ms of CPU and ~10 MiB at every start), which the listener never uses.
    """
    return dict(token.partition(":")[::2] for token in line.split())


def wait_event(stdin: TextIO, stdout: TextIO) -> tuple[dict[str, str], str]:
    """Tell supervisord the listener is READY, then read one event: its headers and payload."""
    stdout.write("READY\n")
    stdout.flush()
    headers = header_fields(stdin.readline())
    return headers, stdin.read(int(headers["len"]))


class Listener:
    def __init__(
        self,
        failure_file: Path,
        fmt: str,
        stop_supervisord: Callable[[], None],
        feed: ProgramsFeed | None = None,
    ) -> None:
        self.failure_file = failure_file
        self.lines = LineFormatter(fmt)
        self.crashes = CrashWatch()
        self.stop_supervisord = stop_supervisord
        self.failed = False
        self.feed = feed

    def handle(self, headers: dict[str, str], payload: str) -> str:
        """One event -> the RESULT body for supervisord."""
        name = headers.get("eventname", "")
        # Log events carry data after their header line; state events are the header line alone.
        head, _, data = payload.partition("\n")
        fields = header_fields(head)
        process = fields.get("processname", "?")
        self.update_feed(name, fields)
        if name.startswith("PROCESS_LOG_"):
            channel = fields.get("channel", "stdout")
            out = self.lines.feed(process, channel, data)
            return encode(channel, out) if out else OK
        if name.startswith("PROCESS_STATE_"):
            return self.on_state(name.removeprefix("PROCESS_STATE_"), process, fields)
        return OK

    def update_feed(self, name: str, fields: dict[str, str]) -> None:
        if self.feed is None:
            return
        try:
            self.feed.handle(name, fields)
        except OSError as exc:
            # The feed is for people looking at the UI; the lines and the crash watch matter more.
            print(f"noetl listener: programs feed off: cannot write {self.feed.path}: {exc}", file=sys.stderr)
            self.feed = None

    def on_state(self, state: str, process: str, fields: dict[str, str]) -> str:
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
                out += f"noetl | {problem}; stopping everything\n"
            self.stop_supervisord()
        return encode("stderr" if problem else "stdout", out) if out else OK

    def record_failure(self, line: str) -> None:
        write_private(self.failure_file, line + "\n")


def serve(listener: Listener, stdin: TextIO, stdout: TextIO) -> None:
    """The listener protocol loop: READY, read one event, answer RESULT; until stdin closes.

    Both streams are UTF-8 text without newline translation: supervisord counts an event's ``len``
    in characters of the decoded payload but a RESULT's in bytes.
    """
    while True:
        try:
            headers, payload = wait_event(stdin, stdout)
        except KeyError:  # an empty header line: stdin closed, supervisord is gone
            return
        body = listener.handle(headers, payload)
        # The length in bytes (supervisor.childutils.listener.send counts characters).
        stdout.write(f"RESULT {len(body.encode('utf-8'))}\n{body}")
        stdout.flush()


def _text(stream: BinaryIO) -> TextIO:
    return io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noetl.supervisor.listener")
    parser.add_argument("--failure-file", type=Path, required=True)
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--programs-file", type=Path, help="write the programs' states here for the server")
    parser.add_argument("--readable-by", metavar="USER", help="let this user's group read the programs file")
    args = parser.parse_args(argv)
    supervisord = os.getppid()

    def stop_supervisord() -> None:
        os.kill(supervisord, signal.SIGTERM)

    feed = ProgramsFeed(args.programs_file, args.readable_by) if args.programs_file else None
    listener = Listener(args.failure_file, args.format, stop_supervisord, feed)
    try:
        with contextlib.suppress(BrokenPipeError):  # supervisord went away first
            serve(listener, _text(sys.stdin.buffer), _text(sys.stdout.buffer))
    finally:
        if listener.feed is not None:
            listener.feed.remove()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
