"""The supervised programs as the server sees them, under a real `noetl run` (supervisord, server,
workers on a real PostgreSQL and NATS): the states `noetl ctl status` shows, learned without the
control socket, following a worker that is killed and one that is stopped."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from noetl.protocol.programs import snapshot_path
from noetl.server.programs import read_programs
from noetl.settings import load_settings
from tests.integration.test_embedded import open_dir
from tests.open_python import open_python
from tests.services import Nats
from tests.stack import Stack

pytestmark = pytest.mark.integration

WORKERS = {"worker_00", "worker_01"}
APP_USER = "noetl"  # NOETL_USER's default


@pytest.fixture
def stack(pg_env: dict[str, str], nats: Nats) -> Iterator[Stack]:
    # A home the server's user may enter when root runs the launcher (pytest's tmp_path is closed).
    with open_dir("noetl-programs-") as base:
        s = Stack(home=base / "home", env={**pg_env, "NATS_URL": nats.url, "NOETL_WORKERS": "2"})
        try:
            yield s
        finally:
            s.stop()


def feed(stack: Stack) -> list[dict[str, Any]] | None:
    return asyncio.run(read_programs(load_settings(environ=stack.full_env())))


def wait_feed(
    stack: Stack, what: str, ok: Callable[[dict[str, dict[str, Any]]], bool]
) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 60
    seen: list[dict[str, Any]] | None = None
    while time.monotonic() < deadline:
        seen = feed(stack)
        by_name = {p["name"]: p for p in seen or []}
        if ok(by_name):
            return by_name
        time.sleep(0.05)
    raise AssertionError(f"feed: {what}: not after 60 s; last {seen}\n{stack.output()[-3000:]}")


def running(names: set[str]) -> Callable[[dict[str, dict[str, Any]]], bool]:
    return lambda by_name: all(by_name.get(n, {}).get("state") == "RUNNING" for n in names)


def test_the_feed_follows_the_programs_as_ctl_status_does(stack: Stack) -> None:
    assert feed(stack) is None  # not under `noetl run`: no feed
    stack.start()
    rows = stack.wait_running({"server", *WORKERS})
    ctl = {r["name"]: r for r in rows}
    programs = wait_feed(stack, "all RUNNING", running({"server", *WORKERS}))
    assert set(programs) == set(ctl)  # the listener too
    for name, row in ctl.items():
        shown = programs[name]
        assert (shown["group"], shown["state"], shown["pid"]) == (row["group"], "RUNNING", row["pid"]), name
        assert shown["rss_bytes"] > 0 and shown["uptime_s"] >= 0
        assert shown["description"].startswith(f"pid {row['pid']}, uptime ")
    assert [p for p in programs if p != "listener"] == ["server", "worker_00", "worker_01"]  # start order

    # A worker killed: the feed shows it down, then up again with a new pid, as ctl status does.
    old = programs["worker_00"]["pid"]
    os.kill(old, signal.SIGKILL)
    down = wait_feed(stack, "worker_00 down", lambda p: p["worker_00"]["state"] != "RUNNING")
    assert down["worker_00"]["state"] in ("EXITED", "STARTING", "BACKOFF")
    assert down["worker_00"]["pid"] != old and down["worker_00"]["uptime_s"] is None
    assert down["server"]["state"] == "RUNNING"
    up = wait_feed(
        stack,
        "worker_00 back",
        lambda p: running({"worker_00"})(p) and p["worker_00"]["pid"] not in (None, old),
    )
    now = {r["name"]: r for r in stack.status()}
    assert up["worker_00"]["pid"] == now["worker_00"]["pid"]
    # Its uptime counts from the new start: less than its sibling's, which was never restarted.
    assert up["worker_00"]["uptime_s"] < up["worker_01"]["uptime_s"]

    # A worker stopped by hand: STOPPED, no pid.
    assert stack.ctl("stop", "worker_01").returncode == 0
    stopped = wait_feed(stack, "worker_01 stopped", lambda p: p["worker_01"]["state"] == "STOPPED")
    assert (stopped["worker_01"]["pid"], stopped["worker_01"]["rss_bytes"]) == (None, None)
    assert stopped["worker_00"]["state"] == "RUNNING"


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another user only when root starts noetl")
def test_the_servers_user_reads_the_feed_but_cannot_reach_the_control_socket(stack: Stack) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    wait_feed(stack, "all RUNNING", running({"server", *WORKERS}))
    path = snapshot_path(stack.home)
    st = path.stat()
    app = pwd.getpwnam(APP_USER)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, app.pw_gid, 0o640)
    as_app: dict[str, Any] = {"user": app.pw_uid, "group": app.pw_gid, "extra_groups": [], "cwd": "/"}
    script = (
        "import asyncio, json, os\n"
        "from noetl.server.programs import read_programs\n"
        "from noetl.settings import load_settings\n"
        "print(json.dumps(asyncio.run(read_programs(load_settings()))))\n"
        "try:\n"
        "    os.stat(os.environ['NOETL_RUN_DIR'] + '/supervisor.sock')\n"
        "    print('socket reachable')\n"
        "except PermissionError:\n"
        "    print('socket closed')\n"
    )
    env = {**stack.full_env(), "HOME": "/nonexistent"}
    done = subprocess.run(
        [open_python(), "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **as_app,
    )
    assert done.returncode == 0, done.stderr
    seen, socket_line = done.stdout.splitlines()
    names = {p["name"]: p["state"] for p in json.loads(seen)}
    assert {n: names[n] for n in ("server", *sorted(WORKERS))} == {
        "server": "RUNNING",
        "worker_00": "RUNNING",
        "worker_01": "RUNNING",
    }
    assert socket_line == "socket closed"
    # The feed is for reading: that user cannot change it.
    write = subprocess.run(
        [open_python(), "-c", f"open({str(path)!r}, 'a')"],
        capture_output=True,
        timeout=60,
        check=False,
        **as_app,
    )
    assert write.returncode != 0 and b"PermissionError" in write.stderr
