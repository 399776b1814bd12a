"""SIGKILL a worker mid-command, and the server mid-load: every command still ends exactly once."""

from __future__ import annotations

import time

import psutil
import pytest

from tests.faults.conftest import WORKERS
from tests.faults.ledger import Load, assert_all_ended_properly, mixed, sleep, wait_claimed
from tests.faults.tree import TreeWatch, commands_below
from tests.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def pid_of(stack: Stack, name: str) -> int:
    for row in stack.status():
        if row["name"] == name and row["state"] == "RUNNING" and row["pid"]:
            return int(row["pid"])
    raise AssertionError(f"{name} is not running: {stack.status()}")


def test_sigkill_a_worker_mid_command(stack: Stack) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    assert stack.proc is not None
    with TreeWatch(stack.proc.pid) as tree:
        load = Load(stack.url)
        load.submit_all([sleep(10)] * 4 + mixed(12))
        # Whichever worker first runs a long command is the victim: it dies mid-command.
        deadline = time.monotonic() + 60
        victim, tools = 0, list[psutil.Process]()
        while not tools and time.monotonic() < deadline:
            for name in sorted(WORKERS):
                victim = pid_of(stack, name)
                tools = commands_below(victim, "sleep 10")
                if tools:
                    break
            time.sleep(0.1)
        assert tools, "no worker ran a long command"
        psutil.Process(victim).kill()
        # The dead worker's tool processes die with it instead of running on as orphans.
        _, alive = psutil.wait_procs(tools, timeout=5)
        assert not alive, f"the killed worker's commands still run: {alive}"

        load.wait_settled(16, timeout=120)
        verdicts = assert_all_ended_properly(load, 16)
        assert {v.status for v in verdicts} == {"completed"}
        # The fault hit commands mid-run: their leases expired and another attempt completed them.
        assert any(v.lost_leases >= 1 and v.attempts >= 2 for v in verdicts)
        stack.wait_running({"server", *WORKERS})  # supervisord brought the worker back
        assert victim not in {pid_of(stack, name) for name in WORKERS}
        assert stack.stop() == 0
    assert tree.survivors() == []


def test_sigkill_the_server_mid_load(stack: Stack) -> None:
    stack.start()
    stack.wait_running({"server", *WORKERS})
    stack.wait_ready()
    assert stack.proc is not None
    with TreeWatch(stack.proc.pid) as tree:
        load = Load(stack.url)
        load.submit_all(mixed(12, sleep(2)))
        wait_claimed(load, 2, timeout=30)
        feeder = load.in_background(mixed(18, sleep(1)), pace=0.2)
        server = pid_of(stack, "server")
        psutil.Process(server).kill()
        feeder.join(120)
        assert not feeder.is_alive()

        load.wait_settled(30, timeout=120)
        verdicts = assert_all_ended_properly(load, 30)
        assert {v.status for v in verdicts} == {"completed"}
        stack.wait_running({"server", *WORKERS})
        assert pid_of(stack, "server") != server  # restarted by supervisord, not the same process
        assert stack.stop() == 0
    assert tree.survivors() == []
