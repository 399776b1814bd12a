"""NOETL_HOME's files: a directory others may write or another user owns is refused, and so is a
link planted where noetl writes a PID, log or state file. Each refusal is one line and exit 2,
before anything starts."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _noetl(home: Path, *args: str, run_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NOETL_HOME": str(home),
        "NOETL_RUN_DIR": str(run_dir or home / "run"),
        "POSTGRES_HOST": "127.0.0.1",
        "NATS_URL": "nats://127.0.0.1:4222",
        "NOETL_HOST": "127.0.0.1",
    }
    env.pop("NOETL_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "noetl", *args], env=env, capture_output=True, text=True, timeout=60
    )


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_planted_link_at_the_pid_file_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (home / "noetl_server.pid").symlink_to(victim)
    done = _noetl(home, "server", "start")
    assert done.returncode == 2
    line = _one_line(done)
    assert f"{home / 'noetl_server.pid'} is a symbolic link" in line, line
    assert victim.read_text() == "keep me\n"
    assert not (home / "run").exists()  # nothing started
    # stop reads the same file: refused the same way, the link left for the owner to look at.
    done = _noetl(home, "server", "stop")
    assert done.returncode == 2 and "is a symbolic link" in _one_line(done)
    assert (home / "noetl_server.pid").is_symlink()


def test_a_planted_link_at_the_run_lock_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "run").mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (home / "run" / "noetl.lock").symlink_to(victim)
    done = _noetl(home, "run")
    assert done.returncode == 2
    assert f"{home / 'run' / 'noetl.lock'} is a symbolic link" in _one_line(done)
    assert victim.read_text() == "keep me\n"


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777])
def test_a_home_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, mode)
    done = _noetl(home, "run")
    assert done.returncode == 2
    line = _one_line(done)
    assert f"NOETL_HOME={str(home)!r} is writable by group or others (mode {mode:04o})" in line, line
    assert not (home / "run").exists()


def test_a_group_writable_run_dir_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    run_dir = home / "run"
    run_dir.mkdir(parents=True)
    os.chmod(run_dir, 0o770)
    done = _noetl(home, "run", run_dir=run_dir)
    assert done.returncode == 2
    assert f"NOETL_RUN_DIR={str(run_dir)!r} is writable by group or others" in _one_line(done)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_home_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    nobody = pwd.getpwnam("nobody")
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    done = _noetl(home, "run")
    assert done.returncode == 2
    assert f"NOETL_HOME={str(home)!r} is owned by uid {nobody.pw_uid}, not by this user" in _one_line(done)
    assert not (home / "run").exists()
