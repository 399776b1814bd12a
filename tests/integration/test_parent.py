"""The launcher finds its children as psutil does, without scanning every process on the machine."""

from __future__ import annotations

import subprocess

import psutil
import pytest

from noetl.supervisor.parent import child_pids

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
