"""`noetl ctl status` reads /proc as psutil does (this process: nothing is spawned)."""

from __future__ import annotations

import os

import psutil

from noetl.supervisor.ctl_status import proc_usage, psutil_usage, rows

MIB = 1024 * 1024


def test_proc_figures_are_psutil_s() -> None:
    mine = proc_usage(os.getpid())
    theirs = psutil_usage(os.getpid())
    assert mine is not None and theirs is not None
    rss, cpu, started = mine
    assert abs(rss - theirs[0]) < 4 * MIB  # read a moment apart by a process that allocates
    assert abs(cpu - theirs[1]) < 0.5
    assert abs(started - theirs[2]) < 0.02
    assert abs(started - psutil.Process().create_time()) < 0.02


def test_a_process_that_is_gone_has_no_figures() -> None:
    assert proc_usage(2**22 + 1) is None  # above the kernel's largest PID


def test_rows_take_figures_for_running_processes_only() -> None:
    infos = [
        {"name": "server", "group": "server", "statename": "RUNNING", "pid": 41, "start": 1000.0},
        {"name": "worker_00", "group": "workers", "statename": "STOPPED", "pid": 0},
    ]
    found = rows(infos, now=1010.0, usage=lambda pid: (64 * MIB, 2.0, 1000.0))
    assert [(r.name, r.state, r.pid, r.rss, r.uptime) for r in found] == [
        ("server", "RUNNING", 41, 64 * MIB, 10.0),
        ("worker_00", "STOPPED", None, None, None),
    ]
    assert found[0].cpu_percent == 20.0
