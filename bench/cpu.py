"""CPU time per process group over a stretch of a benchmark, read from /proc (through psutil).

A group is a set of root processes; its CPU is the roots' and every live descendant's user +
system time, plus what their reaped children left in ``cutime``/``cstime`` (a `true` run by a
worker, a backend PostgreSQL closed). ``own`` roots count their own time only and ``children``
their descendants' only, so a worker and the tools it ran can be reported apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psutil


def _own(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def _reaped(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.children_user + times.children_system)


def _descendants(proc: psutil.Process) -> float:
    """Live descendants' time and what every process of the tree reaped."""
    total = _reaped(proc)
    for child in proc.children(recursive=True):
        try:
            total += _own(child) + _reaped(child)
        except psutil.Error:
            continue  # gone in between: its time went to its parent's reaped time, counted or not
    return total


@dataclass
class Group:
    """Roots whose time counts; ``part`` is "all", "own" (the roots alone) or "children"."""

    roots: list[psutil.Process]
    part: str = "all"

    def seconds(self) -> float:
        total = 0.0
        for root in self.roots:
            try:
                if self.part in ("all", "own"):
                    total += _own(root)
                if self.part in ("all", "children"):
                    total += _descendants(root)
            except psutil.Error:
                continue
        return total


@dataclass
class CpuMeter:
    """``start()`` then ``stop()``: CPU seconds each group used in between (``used``)."""

    groups: dict[str, Group]
    _start: dict[str, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, groups: Mapping[str, tuple[Iterable[int], str]]) -> CpuMeter:
        """Groups by PIDs: name -> (root PIDs, part)."""
        return cls(
            {name: Group([psutil.Process(p) for p in pids], part) for name, (pids, part) in groups.items()}
        )

    def start(self) -> None:
        self._start = {name: group.seconds() for name, group in self.groups.items()}

    def stop(self) -> dict[str, float]:
        self.used = {name: group.seconds() - self._start[name] for name, group in self.groups.items()}
        return self.used


def per_command_ms(used: Mapping[str, float], commands: int) -> dict[str, float]:
    """Milliseconds of CPU per command for each group, and their total."""
    row = {name: round(seconds * 1000 / commands, 3) for name, seconds in used.items()}
    row["total"] = round(sum(used.values()) * 1000 / commands, 3)
    return row
