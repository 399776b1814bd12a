"""`noetl server|worker start|stop` in the background: `server start --init-db`, worker sets by
`--name` with `--workers`, their PID files, and `stop --force` for a run that no longer answers
(its launcher and supervisord frozen with SIGSTOP, as a hung host would leave them)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.open_python import open_python
from tests.services import wait_until
from tests.stack import Stack

pytestmark = pytest.mark.integration


class Daemons:
    """Runs `noetl ...` with the stack's environment; at the end kills every process it has seen
    and whatever a PID file still names (a failed test must not leave a run behind)."""

    def __init__(self, stack: Stack, **env: str) -> None:
        self.stack = stack
        self.env = stack.full_env(env)
        self.seen: list[psutil.Process] = []

    def noetl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # start: as root the programs run as NOETL_USER with this interpreter, so one it can run.
        python = open_python() if "start" in args else sys.executable
        return subprocess.run(
            [python, "-m", "noetl", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def pidfile(self, name: str) -> Path:
        return self.stack.home / name

    def tree(self, pidfile: str) -> list[psutil.Process]:
        launcher = psutil.Process(int(self.pidfile(pidfile).read_text()))
        found = [launcher, *launcher.children(recursive=True)]
        self.seen.extend(found)
        return found

    def kill_leftovers(self) -> None:
        for path in self.stack.home.glob("noetl_*.pid"):
            with contextlib.suppress(psutil.Error, ValueError, OSError):
                self.tree(path.name)
        for proc in self.seen:
            with contextlib.suppress(psutil.Error):
                proc.kill()  # psutil checks it is still the process it saw, not a reused PID


@pytest.fixture
def daemons(stack: Stack) -> Iterator[Daemons]:
    found = Daemons(stack, NOETL_STOP_TIMEOUT="1", NOETL_WORKER_STOP_TIMEOUT="2")
    try:
        yield found
    finally:
        found.kill_leftovers()


def workers_listed(daemons: Daemons) -> dict[str, Any]:
    status, body = daemons.stack.api("GET", "/api/workers")
    assert status == 200, body
    return {w["worker_id"]: w for w in body["items"]}


def test_server_start_init_db_then_a_named_worker_set_round_trip(daemons: Daemons) -> None:
    stack = daemons.stack
    started = daemons.noetl("server", "start", "--init-db")
    assert started.returncode == 0, started.stderr
    # The schema first (`noetl db init` on the empty database), then the server.
    first, second = started.stdout.splitlines()
    assert first.startswith("schema at version ") and "(applied 1, " in first, first
    assert second.startswith("noetl server started (pid ")
    daemons.tree("noetl_server.pid")  # seen: killed at the end should the test fail
    stack.wait_ready()

    bad = daemons.noetl("worker", "start", "--name", "blue moon")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("noetl: --name='blue moon' is not valid")
    assert not daemons.pidfile("noetl_worker_blue moon.pid").exists()

    blue = daemons.noetl("worker", "start", "--name", "blue", "--workers", "3")
    assert blue.returncode == 0, blue.stderr
    pid = daemons.tree("noetl_worker_blue.pid")[0].pid
    assert blue.stdout.startswith(f"noetl worker blue started (pid {pid}): 3 worker(s) -> {stack.url}")
    run_dir = stack.run_dir / "worker-blue"
    status = daemons.noetl("ctl", "--run-dir", str(run_dir), "status")
    assert status.returncode == 0, status.stdout
    assert sorted(line.split()[0] for line in status.stdout.splitlines()[1:]) == [
        "listener",
        "worker_00",
        "worker_01",
        "worker_02",
    ]
    wait_until(lambda: len(workers_listed(daemons)) == 3, 60, "three workers registered", interval=0.2)
    again = daemons.noetl("worker", "start", "--name", "blue")
    assert again.returncode == 5 and f"noetl worker blue is already running (pid {pid}" in again.stderr

    code, body = stack.api("POST", "/api/executions", {"tool": {"kind": "shell", "command": "echo blue"}})
    assert code == 201, body
    wait_until(
        lambda: stack.api("GET", f"/api/executions/{body['execution_id']}")[1]["status"] == "COMPLETED",
        60,
        "the command completed by the blue workers",
        interval=0.2,
    )

    tree = daemons.tree("noetl_worker_blue.pid")
    stopped = daemons.noetl("worker", "stop", "--name", "blue")
    assert (stopped.returncode, stopped.stdout) == (0, "noetl worker blue stopped\n"), stopped.stderr
    assert not daemons.pidfile("noetl_worker_blue.pid").exists()
    _, alive = psutil.wait_procs(tree, timeout=5)
    assert alive == []
    assert {w["status"] for w in workers_listed(daemons).values()} == {"offline"}  # they drained and said so
    gone = daemons.noetl("worker", "stop", "--name", "blue")
    assert (gone.returncode, gone.stdout) == (0, "noetl worker blue is not running\n")
    assert daemons.noetl("server", "stop").stdout == "noetl server stopped\n"


def freeze(daemons: Daemons, pidfile: str) -> list[psutil.Process]:
    """SIGSTOP the launcher and its supervisord (the programs run on); the whole tree."""
    tree = daemons.tree(pidfile)
    launcher = tree[0]
    for proc in [launcher, *launcher.children()]:
        proc.send_signal(signal.SIGSTOP)
    return tree


def test_stop_force_kills_a_run_that_does_not_answer(daemons: Daemons) -> None:
    assert daemons.noetl("server", "start").returncode == 0
    assert daemons.noetl("worker", "start", "--name", "hung", "--workers", "1").returncode == 0
    server_tree = freeze(daemons, "noetl_server.pid")
    worker_tree = freeze(daemons, "noetl_worker_hung.pid")

    # Both at once (each waits out the control socket's timeout and its stop budget).
    with subprocess.Popen(
        [sys.executable, "-m", "noetl", "worker", "stop", "--name", "hung"],
        env=daemons.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as polite:
        forced = daemons.noetl("server", "stop", "--force")
        out, err = polite.communicate(timeout=120)

    assert (forced.returncode, forced.stdout) == (0, "noetl server stopped\n"), forced.stderr
    assert not daemons.pidfile("noetl_server.pid").exists()
    _, alive = psutil.wait_procs(server_tree, timeout=5)
    assert alive == []

    # Without --force the stop gives up, says how to force it, and leaves everything as it was.
    assert polite.returncode == 1, out + err
    assert err.count("\n") == 1 and err.startswith("noetl: noetl worker hung did not stop within "), err
    assert err.endswith("s; `noetl worker stop --force` kills it\n"), err
    assert daemons.pidfile("noetl_worker_hung.pid").exists()
    assert all(proc.is_running() for proc in worker_tree)

    forced = daemons.noetl("worker", "stop", "--name", "hung", "--force")
    assert (forced.returncode, forced.stdout) == (0, "noetl worker hung stopped\n"), forced.stderr
    assert not daemons.pidfile("noetl_worker_hung.pid").exists()
    _, alive = psutil.wait_procs(worker_tree, timeout=5)
    assert alive == []
