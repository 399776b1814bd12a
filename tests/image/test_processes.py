"""Telling the image's processes from the ones entered from outside (pure: spawns nothing).

The tables are shaped like what the probe saw in the worker container while the HEALTHCHECK
entered it (see docs/deploy.md): PIDs as seen inside, parent 0 for what came from outside.
"""

from __future__ import annotations

import json

from tests.image.processes import Proc, not_running_as, parse, split_at_pid1

NOETL = (10001, 10001, 10001)
ROOT = (0, 0, 0)


def proc(pid: int, ppid: int, uids: tuple[int, ...] = NOETL, cmdline: str = "") -> Proc:
    return Proc(pid=pid, ppid=ppid, uids=uids, gids=uids, cmdline=cmdline)


WORKER = [
    proc(1, 0, cmdline="/opt/venv/bin/python /opt/venv/bin/noetl run"),
    proc(7, 1, cmdline="python -m supervisor.supervisord -c /var/lib/noetl/run/supervisord.conf"),
    proc(8, 7, cmdline="python -m noetl.supervisor.listener"),
    proc(9, 7, cmdline="python -m noetl.worker"),
    proc(10, 7, cmdline="python -m noetl.worker"),
]


def pids(processes: list[Proc]) -> list[int]:
    return [p.pid for p in processes]


def test_a_process_entering_as_root_is_outside_and_the_image_is_all_non_root() -> None:
    entering = proc(40, 0, ROOT, "runc init")
    probe = proc(41, 0, cmdline="python -c import json, os, psutil")
    image, outside = split_at_pid1([*WORKER, entering, probe])
    assert pids(image) == [1, 7, 8, 9, 10]
    assert pids(outside) == [40, 41]
    assert not_running_as(10001, 10001, image) == []
    assert not_running_as(10001, 10001, outside) == [entering]


def test_a_root_process_anywhere_under_pid_1_is_the_image_s() -> None:
    tool = proc(20, 9, cmdline="sh -c sleep 30")
    rooted = proc(21, 20, ROOT, "sleep 30")
    image, outside = split_at_pid1([*WORKER, tool, rooted, proc(41, 0)])
    assert pids(image) == [1, 7, 8, 9, 10, 20, 21]
    assert pids(outside) == [41]
    assert not_running_as(10001, 10001, image) == [rooted]


def test_a_root_pid_1_is_the_image_s() -> None:
    image, _ = split_at_pid1([proc(1, 0, ROOT), *WORKER[1:]])
    assert pids(not_running_as(10001, 10001, image)) == [1]


def test_children_of_an_entered_process_are_outside_too() -> None:
    image, outside = split_at_pid1([*WORKER, proc(50, 0), proc(51, 50), proc(52, 51)])
    assert pids(image) == [1, 7, 8, 9, 10]
    assert pids(outside) == [50, 51, 52]


def test_a_process_whose_parent_ended_during_the_probe_still_counts_as_the_image_s() -> None:
    # Its parent (a tool's shell, pid 20) is gone from the table: it is PID 1's orphan by now.
    image, outside = split_at_pid1([*WORKER, proc(21, 20, ROOT)])
    assert 21 in pids(image) and outside == []


def test_only_one_id_out_of_real_effective_and_saved_is_enough_to_count() -> None:
    setuid = Proc(pid=30, ppid=9, uids=(10001, 0, 10001), gids=(10001,) * 3, cmdline="x")
    regroup = Proc(pid=31, ppid=9, uids=NOETL, gids=(10001, 10001, 0), cmdline="y")
    assert not_running_as(10001, 10001, [*WORKER, setuid, regroup]) == [setuid, regroup]


def test_parse_reads_the_probe_output() -> None:
    output = json.dumps(
        {
            "self": 41,
            "processes": [
                {"pid": 1, "ppid": 0, "uids": [10001] * 3, "gids": [10001] * 3, "cmdline": ["noetl", "run"]},
                {"pid": 40, "ppid": 0, "uids": [0] * 3, "gids": [0] * 3, "cmdline": None},
            ],
        }
    )
    snapshot = parse(output)
    assert snapshot.probe == 41
    assert snapshot.processes == (
        Proc(1, 0, NOETL, NOETL, "noetl run"),
        Proc(40, 0, ROOT, ROOT, ""),
    )
    assert snapshot.processes[1].describe() == "pid 40 (parent 0) uids [0, 0, 0]: ?"
