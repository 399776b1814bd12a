"""`noetl run` alone, with its embedded PostgreSQL and NATS (no external services)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import assert_render_matches_the_written_config
from tests.open_python import open_python
from tests.services import free_port, wait_until
from tests.stack import Stack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

PROGRAMS = {"postgres", "nats", "server", "worker_00"}
TEST_USER = "noetl-test-user"


def _embedded_stack(home: Path) -> Stack:
    stack = Stack(
        home=home,
        env={
            "NOETL_WORKERS": "1",
            "NOETL_EMBEDDED_POSTGRES_PORT": str(free_port()),
            "NOETL_EMBEDDED_NATS_PORT": str(free_port()),
        },
    )
    return stack


def _clean_env(stack: Stack) -> None:
    for name in ("POSTGRES_HOST", "NATS_URL", "NOETL_SERVER_URL"):
        os.environ.pop(name, None)
    stack.env["NOETL_SERVER_URL"] = stack.url


@contextlib.contextmanager
def open_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory others may enter: as root, PostgreSQL runs as another user.

    Not under pytest's tmp_path: pytest closes /tmp/pytest-of-<user> to others (0700) whenever a
    session starts.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def home() -> Iterator[Path]:
    with open_dir("noetl-embedded-") as path:
        (path / "home").mkdir()
        yield path / "home"


def _complete_one(stack: Stack) -> str:
    status, body = stack.api(
        "POST", "/api/executions", {"tool": {"kind": "shell", "command": "echo embedded"}}
    )
    assert status == 201, body
    execution_id = body["execution_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, execution = stack.api("GET", f"/api/executions/{execution_id}")
        if execution["status"] == "COMPLETED":
            return str(execution_id)
        time.sleep(0.2)
    raise AssertionError(f"not completed: {execution}\n{stack.output()[-3000:]}")


def test_whole_stack_from_noetl_run_alone_survives_a_restart(home: Path) -> None:
    stack = _embedded_stack(home)
    _clean_env(stack)
    try:
        stack.start()
        rows = stack.wait_running(PROGRAMS)
        # What run wrote, embedded programs and group included, is what `config render` prints.
        assert_render_matches_the_written_config(stack)
        stack.wait_ready()
        assert {r["name"]: r["group"] for r in rows} == {
            "listener": "listener",
            "postgres": "services",
            "nats": "services",
            "server": "server",
            "worker_00": "workers",
        }
        # The group's name restarts both services, and the server and worker carry on.
        before = {r["name"]: r["pid"] for r in rows}
        restarted = stack.ctl("restart", "services")
        assert (restarted.returncode, restarted.stdout) == (0, "services: restart done\n"), restarted.stderr
        rows = stack.wait_running(PROGRAMS)
        after = {r["name"]: r["pid"] for r in rows}
        assert after["postgres"] != before["postgres"] and after["nats"] != before["nats"]
        assert (after["server"], after["worker_00"]) == (before["server"], before["worker_00"])
        execution_id = _complete_one(stack)
        processes = [psutil.Process(int(r["pid"])) for r in rows]
        stack.signal(signal.SIGTERM)
        assert stack.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(processes, timeout=2)
        assert alive == []  # PostgreSQL and NATS too
        # PostgreSQL's own last line, from its log file in the run dir: the console may miss the
        # last lines a program writes as supervisord stops the event listener right after it.
        (postgres_log,) = (stack.run_dir / "logs").glob("postgres-stderr*.log")
        assert "database system is shut down" in postgres_log.read_text()

        stack.start()
        stack.wait_running(PROGRAMS)
        stack.wait_ready()
        status, execution = stack.api("GET", f"/api/executions/{execution_id}")
        assert status == 200 and execution["status"] == "COMPLETED"

        def second_start() -> str:
            return stack.output().rsplit("noetl | starting", 1)[1]

        # PostgreSQL's lines reach the console through the event listener, on their own time: the
        # server being ready does not mean they were written there yet.
        wait_until(
            lambda: "database system was shut down at" in second_start(),  # a clean stop: no crash recovery
            30,
            "PostgreSQL's start line on the console",
        )
        assert "automatic recovery" not in second_start()
        assert stack.stop() == 0
    finally:
        stack.stop()


def test_two_runs_side_by_side_with_their_own_home_and_ports(home: Path) -> None:
    stacks = [_embedded_stack(home.parent / name) for name in ("a", "b")]
    try:
        for stack in stacks:
            _clean_env(stack)
            stack.start()
        for stack in stacks:
            stack.wait_running(PROGRAMS)
            stack.wait_ready()
            _complete_one(stack)
    finally:
        codes = [stack.stop() for stack in stacks]
    assert codes == [0, 0]


def _test_user(home: Path) -> int | None:
    """As root, a system user of the test's own, given ``home``; otherwise None: this run already
    is a normal user's."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", TEST_USER], check=True)
        user = pwd.getpwnam(TEST_USER)
    shutil.chown(home, user.pw_uid, user.pw_gid)
    return user.pw_uid


def test_as_a_normal_user(home: Path) -> None:
    # No skip: as root it switches to a user of its own, and otherwise it already runs as one.
    uid = _test_user(home)
    stack = _embedded_stack(home)
    _clean_env(stack)
    stack.env["HOME"] = str(home)
    # An interpreter and packages that user can reach (the development venv may sit under /root).
    stack.start(argv0=[open_python(), "-m", "noetl"], user=uid)
    try:
        rows = stack.wait_running(PROGRAMS)
        expected = os.getuid() if uid is None else uid
        assert expected != 0
        for row in rows:
            assert psutil.Process(int(row["pid"])).uids().real == expected, row
        stack.wait_ready()
        _complete_one(stack)
        assert stack.stop() == 0
    finally:
        stack.stop()
