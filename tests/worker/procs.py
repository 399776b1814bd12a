"""Helpers to check that processes a tool started are really gone."""

from __future__ import annotations

import time
from pathlib import Path

import psutil


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The pids still alive after waiting up to ``timeout`` seconds for all of them to end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        time.sleep(0.02)
    return [pid for pid in pids if alive(pid)]


def read_pids(path: Path, count: int, timeout: float = 30.0) -> list[int]:
    """Wait until ``path`` holds ``count`` pids, one a line, and return them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            pids = [int(line) for line in path.read_text().split() if line.strip()]
            if len(pids) >= count:
                return pids
        time.sleep(0.02)
    raise AssertionError(f"{path} did not get {count} pids within {timeout}s")
