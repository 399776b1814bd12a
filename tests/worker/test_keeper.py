"""The tool keeper (noetl.tools.keeper): tools spawned without a death signal still die with their worker."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import psutil

from noetl.tools.keeper import Keeper
from tests.worker.procs import alive, wait_gone

# An owner like a worker: a keeper, a tool in its own session (a shell with a child of its own),
# the tool's group watched; it prints the shell's and the child's pids and waits to be killed.
OWNER = textwrap.dedent(
    """
    import subprocess, time
    from noetl.tools.keeper import Keeper
    keeper = Keeper()
    keeper.start()
    tool = subprocess.Popen(
        ["sh", "-c", "sleep 300 & echo $!; wait"], start_new_session=True, stdout=subprocess.PIPE
    )
    keeper.watch(tool.pid)
    print(tool.pid, tool.stdout.readline().decode().strip(), flush=True)
    time.sleep(300)
    """
)


def test_a_sigkilled_owner_takes_every_process_of_its_tools_groups_with_it() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE)
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        keepers = [p.pid for p in psutil.Process(owner.pid).children() if "-S" in p.cmdline()]
        assert len(keepers) == 1
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
    assert wait_gone(pids) == []  # the shell and its child, not only the direct child
    assert wait_gone(keepers) == []  # the keeper ends with them


def test_closing_kills_the_groups_still_listed_and_leaves_forgotten_ones() -> None:
    keeper = Keeper()
    keeper.start()
    listed = subprocess.Popen(["sleep", "300"], start_new_session=True)
    forgotten = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        keeper.watch(listed.pid)
        keeper.watch(forgotten.pid)
        keeper.forget(forgotten.pid)
        keeper.close()
        assert listed.wait(timeout=10) == -signal.SIGKILL
        assert forgotten.poll() is None
        assert not keeper.active
    finally:
        for proc in (listed, forgotten):
            proc.kill()
            proc.wait(timeout=10)
