"""`noetl ctl tail` on a log of accented text, against a real supervisord.

supervisord answers a tail with the log's last N bytes decoded strictly as UTF-8, and with HTTP 500
when they start inside a character; the control client then asks for a window up to three bytes
shorter, which starts at the next character (``Control.tail``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl.supervisor.control import Control
from noetl.supervisor.paths import RunPaths
from tests.services import stop_pid, wait_until

pytestmark = pytest.mark.integration

TEXT = "é" * 50_000  # 100,000 bytes: a window of the last N bytes starts inside a character for odd N


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Control]:
    paths = RunPaths(tmp_path)
    log = tmp_path / "p.log"
    script = f"import time; print('{TEXT[:1]}' * {len(TEXT)}, end='', flush=True); time.sleep(600)"
    program = f'{sys.executable} -c "{script}"'
    paths.config.write_text(
        f"[unix_http_server]\nfile={paths.socket}\nusername=u\npassword=p\n"
        f"[supervisorctl]\nserverurl=unix://{paths.socket}\nusername=u\npassword=p\n"
        f"[supervisord]\nlogfile={tmp_path / 'supervisord.log'}\npidfile={paths.pidfile}\nnodaemon=true\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
        f"[program:p]\ncommand={program}\nstdout_logfile={log}\nstartsecs=0\n"
        'environment=PYTHONIOENCODING="utf-8"\n',
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-c", str(paths.config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: log.exists() and log.stat().st_size == len(TEXT.encode()), 30, "the program's output"
        )
        wait_until(paths.socket.exists, 30, "supervisord's socket")
        yield Control(paths)
    finally:
        stop_pid(proc)


def test_every_window_of_accented_text_is_read(control: Control) -> None:
    size = len(TEXT.encode())
    for length in range(4000, 4008):
        window, offset, overflow = control.tail("p", 0, length)
        assert offset == size and overflow
        # The last `length` bytes, less the part of a character they start inside.
        assert window == TEXT.encode()[-(length - length % 2) :]


def test_following_after_an_offset_reads_the_end(control: Control) -> None:
    size = len(TEXT.encode())
    window, offset, overflow = control.tail("p", size - 1001, 65_537)
    assert (offset, overflow) == (size, False)
    assert window == TEXT.encode()[-65_536:]
