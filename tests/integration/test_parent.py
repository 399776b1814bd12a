"""The launcher finds its children as psutil does, without scanning every process on the machine; the
supervisord it starts before writing the config ends quietly when it is not given one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from noetl.supervisor.parent import Supervisord, child_pids
from noetl.supervisor.paths import RunPaths

pytestmark = pytest.mark.integration


def test_child_pids_are_psutil_s_children() -> None:
    sleepers = [subprocess.Popen(["sleep", "30"]) for _ in range(3)]
    try:
        mine = sorted(child_pids())
        assert mine == sorted(child.pid for child in psutil.Process().children())
        assert {proc.pid for proc in sleepers} <= set(mine)
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait()
    assert not {proc.pid for proc in sleepers} & set(child_pids())


def test_supervisord_started_early_and_cancelled_ends_without_a_word(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    early = Supervisord.start(sys.executable, os.environ, RunPaths(tmp_path))
    # Named as supervisord is (tools find it by its config), before the config is even written.
    assert early.proc.args[-2:] == ["-c", str(tmp_path / "supervisord.conf")]  # type: ignore[index]
    pid = early.proc.pid
    early.cancel()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    early.cancel()  # twice: nothing more to do
    # Its stdin closed with nothing written: the launcher stopped before writing a config.
    done = subprocess.run(
        [sys.executable, "-m", "noetl.supervisor.early", "-c", str(tmp_path / "supervisord.conf")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert capfd.readouterr() == ("", "")


def test_the_end_of_a_clean_stop_finds_no_child_without_psutil() -> None:
    check = (
        "import sys\n"
        "from noetl.supervisor.parent import kill_tree\n"
        "kill_tree()\n"
        "print('psutil' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert done.stdout == "False\n"
    # With a child left, it is killed (and psutil used to find its descendants).
    check_child = (
        "import os, subprocess, sys\n"
        "from noetl.supervisor.parent import kill_tree\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        "kill_tree()\n"
        "print(os.path.exists(f'/proc/{child.pid}'), 'psutil' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", check_child], capture_output=True, text=True, check=True)
    assert done.stdout == "False True\n"  # killed and reaped
