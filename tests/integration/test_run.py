"""`noetl run` with the real supervisord, server and workers on a real PostgreSQL and NATS."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from noetl.settings import load_settings
from noetl.supervisor.render import max_stop_seconds
from tests.integration.conftest import assert_render_matches_the_written_config
from tests.open_python import open_python
from tests.stack import Stack

pytestmark = pytest.mark.integration

WORKERS = {"worker_00", "worker_01"}


def _pids(rows: list[dict[str, object]]) -> list[int]:
    return [int(r["pid"]) for r in rows if r["pid"]]  # type: ignore[call-overload]


def test_run_comes_up_and_supervisorctl_agrees(stack: Stack) -> None:
    stack.env.update(NOETL_WORKERS="2")
    stack.start()
    rows = stack.wait_running({"server", *WORKERS})
    assert {r["name"]: r["group"] for r in rows} == {
        "listener": "listener",
        "server": "server",
        "worker_00": "workers",
        "worker_01": "workers",
    }
    for row in rows:
        assert row["pid"] and row["rss"] and row["uptime"] is not None
    # The server and workers start without aiohttp (noetl.supervisor.entry): none of its compiled
    # modules (or those of yarl and multidict it brings) is mapped into them.
    for row in rows:
        if row["name"] != "listener":
            maps = (Path("/proc") / str(row["pid"]) / "maps").read_text()
            assert not [lib for lib in ("aiohttp", "yarl", "multidict") if lib in maps], row["name"]

    human = stack.ctl("status")
    assert human.returncode == 0
    assert human.stdout.splitlines()[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RSS", "CPU%"]

    config = stack.run_dir / "supervisord.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert_render_matches_the_written_config(stack)
    assert stat.S_IMODE(stack.run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((stack.run_dir / "supervisor.sock").stat().st_mode) == 0o700

    ctl = subprocess.run(
        [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(config), "status"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ctl.returncode == 0, ctl.stdout + ctl.stderr
    states = {line.split()[0]: line.split()[1] for line in ctl.stdout.splitlines()}
    assert states == {
        "listener": "RUNNING",
        "server": "RUNNING",
        "workers:worker_00": "RUNNING",
        "workers:worker_01": "RUNNING",
    }
    stack.wait_ready()
    # Program output reaches the launcher's stdout with the process name in front.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        "server | " in stack.output() and "worker_00 | " in stack.output()
    ):
        time.sleep(0.2)
    assert "server | " in stack.output() and "worker_00 | " in stack.output()
    assert "CRIT" not in stack.output()


def test_sigterm_stops_everything_with_exit_0_and_leaves_no_process(stack: Stack) -> None:
    proc = stack.start()
    rows = stack.wait_running({"server", *WORKERS})
    pids = _pids(rows)
    supervisord = psutil.Process(proc.pid).children()
    assert len(supervisord) == 1
    everything = [psutil.Process(pid) for pid in pids] + supervisord
    budget = max_stop_seconds(load_settings(stack.full_env()))
    stack.signal(signal.SIGTERM)
    assert stack.wait(timeout=budget + 5) == 0, stack.output()[-3000:]
    _, alive = psutil.wait_procs(everything, timeout=1)
    assert not alive
    assert not (stack.run_dir / "supervisor.sock").exists()


def test_a_crash_looping_program_ends_run_with_a_line_naming_it(stack: Stack) -> None:
    stack.env.update(NOETL_ROLE="server")
    stack.start()
    stack.wait_running({"server"})
    # Kill the server again and again, as a crash would: supervisord restarts it each time, and the
    # event listener must give up on it and stop everything.
    deadline = time.monotonic() + 90
    while stack.proc is not None and stack.proc.poll() is None and time.monotonic() < deadline:
        for row in stack.status():
            if row["name"] == "server" and row["pid"]:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(int(row["pid"])).kill()
        time.sleep(0.3)
    code = stack.wait(timeout=30)
    assert code == 1
    last = stack.output().strip().splitlines()[-1]
    assert last.startswith("noetl: program server ")
    assert "crashing" in last or "could not start" in last


def test_second_run_on_the_same_run_dir_refuses(stack: Stack) -> None:
    stack.env.update(NOETL_ROLE="server")
    stack.start()
    stack.wait_running({"server"})
    again = subprocess.run(
        [sys.executable, "-m", "noetl", "run"],
        env={**stack.full_env(), "NOETL_PORT": "1"},  # would fail on the port, but the lock comes first
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert again.returncode == 5
    assert again.stderr.startswith("noetl: noetl is already running with run dir")
    assert again.stderr.count("\n") == 1


def test_a_taken_port_is_refused_before_anything_starts(stack: Stack) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", stack.port))
        taken.listen()
        done = subprocess.run(
            [sys.executable, "-m", "noetl", "run"],
            env=stack.full_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 5
    assert f"port {stack.port} on 127.0.0.1 is already in use" in done.stderr
    assert done.stderr.count("\n") == 1  # supervisord, started early for nothing, said nothing
    assert not (stack.run_dir / "supervisord.conf").exists()
    assert not of_this_run(stack)  # and it did not outlive the launcher


def test_stale_socket_and_pidfile_of_a_killed_run_do_not_block_the_next(stack: Stack) -> None:
    stack.env.update(NOETL_ROLE="server")
    proc = stack.start()
    rows = stack.wait_running({"server"})
    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in tree:  # a SIGKILL to everything, as an OOM kill of the whole container would do
        p.kill()
    psutil.wait_procs(tree, timeout=10)
    assert (stack.run_dir / "supervisor.sock").exists() and (stack.run_dir / "supervisord.pid").exists()
    assert _pids(rows)
    stack.start()
    stack.wait_running({"server"})
    assert stack.stop() == 0


def test_json_log_format_gives_one_object_per_line_with_the_process(stack: Stack) -> None:
    stack.env.update(NOETL_ROLE="server", NOETL_LOG_FORMAT="json")
    stack.start()
    stack.wait_running({"server"})
    stack.wait_ready()
    assert stack.stop() == 0
    records = [json.loads(line) for line in stack.output().splitlines() if line.strip()]
    assert records and all("process" in r for r in records)
    assert any(r["process"] == "server" for r in records)


def test_ctl_actions_against_a_running_stack(stack: Stack) -> None:
    stack.env.update(NOETL_ROLE="server")
    stack.start()
    stack.wait_running({"server"})
    assert stack.ctl("stop", "server").returncode == 0
    assert stack.ctl("status").returncode == 3
    assert stack.ctl("start", "server").returncode == 0
    stack.wait_running({"server"})
    assert stack.ctl("restart", "all").returncode == 0
    stack.wait_running({"server"})
    bad = stack.ctl("stop", "nope")
    assert bad.returncode == 1 and bad.stderr.startswith("noetl: no program or group named 'nope'")
    deadline = time.monotonic() + 30  # RUNNING comes before the server's first line on a busy machine
    while True:
        tail = stack.ctl("tail", "--stderr", "server")
        if tail.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert tail.returncode == 0 and tail.stdout
    assert stack.ctl("shutdown").returncode == 0
    assert stack.wait(timeout=30) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a new PID namespace needs root here")
def test_as_pid_1_it_reaps_orphans_and_honours_sigterm(stack: Stack) -> None:
    stack.env.update(NOETL_ROLE="server")
    # --kill-child: should the test fail and stop unshare, PID 1 still gets its SIGTERM.
    unshare = ["unshare", "--fork", "--kill-child=SIGTERM", "--pid", "--mount-proc"]
    proc = stack.start(argv0=[*unshare, open_python(), "-m", "noetl"])
    stack.wait_running({"server"})
    (launcher,) = psutil.Process(proc.pid).children()  # PID 1 of the new namespace
    assert _ns_pid(launcher.pid) == 1
    # An orphan inside the namespace: its parent exits at once, so PID 1 inherits it.
    subprocess.run(
        ["nsenter", "-t", str(launcher.pid), "-p", "-m", "--", "sh", "-c", "sleep 2 & exit 0"], check=True
    )
    # The shell forks the orphan and exits at once, maybe before the orphan has exec'd `sleep`
    # (psutil then names it `sh`): wait for the name, not for the first look.
    orphans = _named(launcher.children(), "sleep")
    deadline = time.monotonic() + 15
    while not orphans and time.monotonic() < deadline:
        time.sleep(0.02)
        orphans = _named(launcher.children(), "sleep")
    assert len(orphans) == 1, launcher.children()  # it lives 2 s: still there, now PID 1's
    # A zombie still has its PID: the PID is free only once PID 1 has reaped it.
    deadline = time.monotonic() + 15
    while psutil.pid_exists(orphans[0].pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(orphans[0].pid), "the orphan was not reaped by PID 1"
    launcher.send_signal(signal.SIGTERM)  # as the container runtime does to PID 1
    assert stack.wait(timeout=60) == 0  # unshare --fork exits with PID 1's status
    assert not launcher.is_running()


def _named(procs: list[psutil.Process], name: str) -> list[psutil.Process]:
    """Those of ``procs`` named ``name`` (one that ended while we looked is not)."""
    found = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.name() == name:
                found.append(proc)
    return found


def _ns_pid(host_pid: int) -> int:
    with open(f"/proc/{host_pid}/status") as fh:
        for line in fh:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError("no NSpid")


def test_server_start_and_stop_round_trip_with_the_pid_file(stack: Stack) -> None:
    env = stack.full_env()
    pidfile = stack.home / "noetl_server.pid"
    start = subprocess.run(
        [open_python(), "-m", "noetl", "server", "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert start.returncode == 0, start.stderr
    assert start.stdout.startswith("noetl server started (pid ")
    pid = int(pidfile.read_text())
    launcher = psutil.Process(pid)
    tree = [launcher, *launcher.children(recursive=True)]
    assert len(tree) >= 4  # launcher, supervisord, listener, server
    ctl = subprocess.run(
        [sys.executable, "-m", "noetl", "ctl", "--run-dir", str(stack.run_dir / "server"), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ctl.returncode == 0 and "server" in ctl.stdout

    again = subprocess.run(
        [open_python(), "-m", "noetl", "server", "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert again.returncode == 5 and f"already running (pid {pid}" in again.stderr

    stop = subprocess.run(
        [sys.executable, "-m", "noetl", "server", "stop"], env=env, capture_output=True, text=True, timeout=90
    )
    assert stop.returncode == 0 and stop.stdout.strip() == "noetl server stopped"
    assert not pidfile.exists()
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert not alive

    stopped = subprocess.run(
        [sys.executable, "-m", "noetl", "server", "stop"], env=env, capture_output=True, text=True, timeout=30
    )
    assert stopped.returncode == 0 and stopped.stdout.strip() == "noetl server is not running"


def test_sigterm_while_a_command_runs_lets_it_finish_and_report_before_the_server_stops(
    stack: Stack, pg_env: dict[str, str]
) -> None:
    import asyncio

    import asyncpg

    stack.env.update(NOETL_WORKERS="1")
    stack.start()
    stack.wait_running({"server", "worker_00"})
    stack.wait_ready()
    status, body = stack.api(
        "POST", "/api/executions", {"tool": {"kind": "shell", "command": "sleep 3; echo done"}}
    )
    assert status == 201, body
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until a worker holds it: the execution is RUNNING from the start
        _, execution = stack.api("GET", f"/api/executions/{body['execution_id']}")
        if execution["commands"][0]["status"] != "pending":
            break
        time.sleep(0.1)
    assert execution["commands"][0]["status"] == "claimed", execution
    stack.signal(signal.SIGTERM)
    assert stack.wait(timeout=60) == 0, stack.output()[-3000:]

    async def command_row() -> asyncpg.Record:
        conn = await asyncpg.connect(
            host=pg_env["POSTGRES_HOST"],
            port=int(pg_env["POSTGRES_PORT"]),
            user=pg_env["POSTGRES_USER"],
            database=pg_env["POSTGRES_DB"],
        )
        try:
            return await conn.fetchrow(
                "SELECT status, attempt FROM noetl.commands WHERE command_id = $1", body["command_id"]
            )
        finally:
            await conn.close()

    row = asyncio.run(command_row())
    # Completed by the worker that was draining, in its first attempt: the server was still there.
    assert (row["status"], row["attempt"]) == ("completed", 1)


def test_a_second_sigterm_kills_everything_at_once(stack: Stack) -> None:
    stack.env.update(NOETL_WORKERS="1", NOETL_WORKER_STOP_TIMEOUT="60")
    proc = stack.start()
    stack.wait_running({"server", "worker_00"})
    stack.wait_ready()
    status, body = stack.api("POST", "/api/executions", {"tool": {"kind": "shell", "command": "sleep 60"}})
    assert status == 201, body
    deadline = time.monotonic() + 30
    tree: list[psutil.Process] = []
    while time.monotonic() < deadline:
        tree = psutil.Process(proc.pid).children(recursive=True)
        if _named(tree, "sleep"):
            break
        time.sleep(0.1)
    assert _named(tree, "sleep")
    stack.signal(signal.SIGTERM)  # the worker starts a drain that could last a minute...
    while "draining" not in stack.output() and time.monotonic() < deadline + 30:
        time.sleep(0.1)
    assert "draining" in stack.output(), stack.output()[-3000:]
    stack.signal(signal.SIGTERM)  # ...but a second signal does not wait
    assert stack.wait(timeout=20) == 1
    assert stack.output().strip().splitlines()[-1] == (
        "noetl: stopped by force (second signal): programs were killed"
    )
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert alive == []


def of_this_run(stack: Stack) -> list[psutil.Process]:
    """Processes left with this stack's NOETL_HOME in their environment."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("NOETL_HOME") == str(stack.home):
                found.append(proc)
    return found
