"""The programs feed: supervisord's state events -> the snapshot file -> what the server shows."""

from __future__ import annotations

import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from noetl.protocol.programs import STALE_AFTER, decode
from noetl.supervisor.listener import Listener
from noetl.supervisor.programs_feed import ProgramsFeed
from tests.unit.supervisor.test_listener import _event, _serve


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _state(feed: ProgramsFeed, state: str, name: str, group: str, **extra: object) -> None:
    fields = {"processname": name, "groupname": group, **{k: str(v) for k, v in extra.items()}}
    feed.handle(f"PROCESS_STATE_{state}", fields)


def test_states_pids_uptime_and_memory_follow_the_events(tmp_path: Path) -> None:
    clock = Clock()
    memory = {101: 50_000_000, 102: 40_000_000, 103: 41_000_000}
    feed = ProgramsFeed(tmp_path / "programs.json", clock=clock, rss=memory.get)
    _state(feed, "STARTING", "server", "server", tries=0)
    _state(feed, "STARTING", "worker_00", "workers", tries=0)
    clock.now += 2
    _state(feed, "RUNNING", "server", "server", pid=101)
    _state(feed, "RUNNING", "worker_00", "workers", pid=102)
    clock.now += 60
    feed.handle("TICK_5", {"when": str(int(clock.now))})  # the listener writes at least every tick
    shown = decode(feed.path.read_text(), now=clock.now)
    assert shown == [
        {
            "name": "server",
            "group": "server",
            "state": "RUNNING",
            "pid": 101,
            "uptime_s": 62.0,
            "rss_bytes": 50_000_000,
            "description": "pid 101, uptime 0:01:02",
        },
        {
            "name": "worker_00",
            "group": "workers",
            "state": "RUNNING",
            "pid": 102,
            "uptime_s": 62.0,
            "rss_bytes": 40_000_000,
            "description": "pid 102, uptime 0:01:02",
        },
    ]
    # A tick refreshes the memory of what runs.
    memory[101] = 70_000_000
    feed.handle("TICK_5", {"when": str(int(clock.now))})
    assert [p["rss_bytes"] for p in decode(feed.path.read_text(), now=clock.now) or []] == [
        70_000_000,
        40_000_000,
    ]
    # The worker is killed: exited, started again with a new pid, its uptime from the new start.
    _state(feed, "EXITED", "worker_00", "workers", expected=0, pid=102)
    exited = decode(feed.path.read_text(), now=clock.now)
    assert exited is not None
    assert (exited[1]["state"], exited[1]["pid"], exited[1]["uptime_s"], exited[1]["rss_bytes"]) == (
        "EXITED",
        None,
        None,
        None,
    )
    _state(feed, "STARTING", "worker_00", "workers", tries=0)
    clock.now += 1
    assert (decode(feed.path.read_text(), now=clock.now) or [])[1]["state"] == "STARTING"
    clock.now += 1
    _state(feed, "RUNNING", "worker_00", "workers", pid=103)
    clock.now += 3
    worker = (decode(feed.path.read_text(), now=clock.now) or [])[1]
    # Counted from the new start (as supervisord counts it: from the spawn, STARTING included).
    assert (worker["state"], worker["pid"], worker["uptime_s"], worker["rss_bytes"]) == (
        "RUNNING",
        103,
        5.0,
        41_000_000,
    )


def test_stopped_and_fatal_programs_read_as_supervisorctl_says() -> None:
    feed = ProgramsFeed(Path("/nonexistent/programs.json"), clock=Clock(), rss=lambda pid: 1)
    feed.on_state("STARTING", {"processname": "worker_01", "groupname": "workers"})
    feed.on_state("BACKOFF", {"processname": "worker_01", "groupname": "workers"})
    feed.on_state("FATAL", {"processname": "worker_01", "groupname": "workers"})
    feed.on_state("STARTING", {"processname": "server", "groupname": "server"})
    feed.on_state("RUNNING", {"processname": "server", "groupname": "server", "pid": "7"})
    feed.on_state("STOPPING", {"processname": "server", "groupname": "server", "pid": "7"})
    feed.on_state("STOPPED", {"processname": "server", "groupname": "server", "pid": "7"})
    from noetl.protocol.programs import shown

    fatal, stopped = (shown(p, 1_000_000.0) for p in feed.programs.values())
    assert (fatal["state"], fatal["description"]) == (
        "FATAL",
        "Exited too quickly (process log may have details)",
    )
    assert (stopped["state"], stopped["pid"], stopped["uptime_s"]) == ("STOPPED", None, None)
    assert stopped["description"]  # the time it stopped, as supervisorctl prints it


def test_a_stale_or_foreign_snapshot_is_no_feed(tmp_path: Path) -> None:
    clock = Clock()
    feed = ProgramsFeed(tmp_path / "programs.json", clock=clock, rss=lambda pid: 1)
    _state(feed, "STARTING", "server", "server")
    text = feed.path.read_text()
    assert decode(text, now=clock.now + STALE_AFTER) is not None
    assert decode(text, now=clock.now + STALE_AFTER + 1) is None  # the run was killed: no feed
    assert decode(json.dumps({**json.loads(text), "version": 99}), now=clock.now) is None
    assert decode(text[: len(text) // 2], now=clock.now) is None  # never a half-written one
    feed.remove()
    assert not feed.path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the file to another group needs root")
def test_as_root_the_servers_group_may_read_it_and_nobody_else(tmp_path: Path) -> None:
    feed = ProgramsFeed(tmp_path / "programs.json", readable_by="nobody", rss=lambda pid: 1)
    _state(feed, "STARTING", "server", "server")
    st = feed.path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, pwd.getpwnam("nobody").pw_gid, 0o640)
    alone = ProgramsFeed(tmp_path / "alone.json", rss=lambda pid: 1)
    _state(alone, "STARTING", "server", "server")
    assert stat.S_IMODE(alone.path.stat().st_mode) == 0o600


def test_the_listener_feeds_it_and_keeps_its_lines_when_it_cannot_write(tmp_path: Path) -> None:
    feed = ProgramsFeed(tmp_path / "programs.json", rss=lambda pid: 123)
    listener = Listener(tmp_path / "failure", "text", lambda: None, feed)
    _serve(
        listener,
        _event("PROCESS_STATE_STARTING", "processname:server groupname:server from_state:STOPPED tries:0")
        + _event("PROCESS_STATE_RUNNING", "processname:server groupname:server from_state:STARTING pid:7"),
    )
    (server,) = decode(feed.path.read_text()) or []
    assert (server["name"], server["state"], server["pid"], server["rss_bytes"]) == (
        "server",
        "RUNNING",
        7,
        123,
    )

    broken = Listener(
        tmp_path / "failure2", "text", lambda: None, ProgramsFeed(tmp_path / "no" / "such.json")
    )
    replies = _serve(
        broken,
        _event("PROCESS_STATE_RUNNING", "processname:server groupname:server from_state:STARTING pid:7")
        + _event("PROCESS_LOG_STDOUT", "processname:server groupname:server pid:7 channel:stdout\nup\n"),
    )
    assert broken.feed is None  # turned off once, with a line on the listener's stderr
    assert b"stdout\nserver | up\n" in replies
