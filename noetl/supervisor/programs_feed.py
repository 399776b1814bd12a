"""The event listener's programs feed: each program's state from supervisord's events, written to
the snapshot the server reads (``noetl.protocol.programs``), so the server never needs the socket.

supervisord creates the listener's pool before it starts any program and buffers events until the
listener is ready, so the listener sees every program from its first STARTING on. A state event
rewrites the snapshot at once; a TICK_5 event refreshes the running programs' memory and rewrites
it too (that also tells the reader the feed is alive).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import time
from collections.abc import Callable
from pathlib import Path

from noetl.protocol.programs import ProgramState, encode


class ProgramsFeed:
    def __init__(
        self,
        path: Path,
        readable_by: str | None = None,
        clock: Callable[[], float] = time.time,
        rss: Callable[[int], int | None] | None = None,
    ) -> None:
        """``readable_by``: a user whose group may read the file (the server's, when root runs
        everything else); the file is its owner's alone otherwise."""
        self.path = path
        self.gid = pwd.getpwnam(readable_by).pw_gid if readable_by else None
        self.clock = clock
        self.rss = rss or process_rss
        self.programs: dict[str, ProgramState] = {}

    def handle(self, eventname: str, fields: dict[str, str]) -> None:
        """One supervisord event (its name and its header fields)."""
        if eventname.startswith("PROCESS_STATE_"):
            self.on_state(eventname.removeprefix("PROCESS_STATE_"), fields)
        elif eventname.startswith("TICK_"):
            self.refresh()
        else:
            return
        self.write()

    def on_state(self, state: str, fields: dict[str, str]) -> None:
        name = fields.get("processname", "?")
        program = self.programs.setdefault(
            name, ProgramState(name=name, group=fields.get("groupname", name), state=state)
        )
        program.state = state
        now = self.clock()
        if state == "STARTING":
            program.start, program.stop, program.pid, program.rss_bytes = now, None, None, None
        if "pid" in fields and fields["pid"] != "0":
            program.pid = int(fields["pid"])
        if state == "RUNNING" and program.pid is not None:
            program.rss_bytes = self.rss(program.pid)
        if state in ("EXITED", "STOPPED", "FATAL", "BACKOFF"):
            program.stop = now
            program.rss_bytes = None

    def refresh(self) -> None:
        for program in self.programs.values():
            if program.state == "RUNNING" and program.pid is not None:
                program.rss_bytes = self.rss(program.pid)

    def write(self) -> None:
        """Replace the snapshot atomically: a reader sees a whole one or the previous one."""
        # In the order the programs first started: as `noetl ctl status` lists them.
        text = encode(list(self.programs.values()), self.clock())
        tmp = self.path.with_name(self.path.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            if self.gid is not None:
                os.fchown(fd, -1, self.gid)
                os.fchmod(fd, 0o640)
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def remove(self) -> None:
        """The run is over: no snapshot rather than one that goes stale."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def process_rss(pid: int) -> int | None:
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None
