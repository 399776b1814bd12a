"""The control client: its own timeout per connection, never the process-wide socket default."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from noetl.errors import ControlError
from noetl.supervisor.control import Control
from noetl.supervisor.paths import RunPaths


def test_a_supervisord_that_never_answers_times_out_without_touching_the_default(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    paths.config.write_text(
        f"[supervisorctl]\nserverurl=unix://{paths.socket}\nusername=u\npassword=p\n", encoding="utf-8"
    )
    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(paths.socket))
        silent.listen()  # accepts (in the kernel's backlog) and never answers
        control = Control(paths, timeout=0.2)
        # A default the process chose for itself (a library, the server) must survive the call.
        socket.setdefaulttimeout(30.0)
        try:
            with pytest.raises(ControlError, match=f"supervisord at {paths.socket}: timed out"):
                control.processes()
            assert socket.getdefaulttimeout() == 30.0
        finally:
            socket.setdefaulttimeout(None)


def test_every_fault_message_names_a_fault_of_supervisor() -> None:
    from supervisor.xmlrpc import Faults

    from noetl.supervisor.control import _FAULTS

    assert set(_FAULTS) <= {name for name in vars(Faults) if name.isupper()}
