"""`noetl run` starts supervisord's process before anything else, so that its imports overlap the
launcher's checks and the config's rendering; it hands it the config last, or ends it when a check
fails (here with a fake supervisord: nothing is spawned)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from noetl.errors import NoetlError
from noetl.settings import Settings, load_settings
from noetl.supervisor import embedded, launch
from noetl.supervisor.paths import RunPaths


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, python: str, environ: Mapping[str, str], paths: RunPaths) -> Recorder:
        self.events.append(f"supervisord started for {paths.config.name}")
        return self

    def supervise(self, paths: RunPaths, env: Mapping[str, str]) -> int:
        assert paths.config.exists()
        self.events.append(f"supervisord given {paths.config.name}, NOETL_PORT={env['NOETL_PORT']}")
        return 0

    def cancel(self) -> None:
        self.events.append("cancel")

    def prepare(
        self, settings: Settings, what: embedded.Plan, bins: embedded.Binaries, root: bool
    ) -> embedded.Secrets:
        self.events.append("services prepared")
        return embedded.Secrets()


def run(env: dict[str, str], recorder: Recorder) -> int:
    return launch.run(
        load_settings(env),
        env,
        sys.executable,
        io.StringIO(),
        start_supervisor=recorder.start,
        prepare_services=recorder.prepare,
        check_python=lambda python, user: None,
    )


def settings_env(tmp_path: Path, port: int) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),
        "NOETL_HOME": str(tmp_path / "home"),
        "NOETL_PORT": str(port),
        "POSTGRES_HOST": "db",
        "NATS_URL": "nats://nats:4222",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_supervisord_starts_first_and_gets_the_config_last(tmp_path: Path) -> None:
    recorder = Recorder()
    port = free_port()
    assert run(settings_env(tmp_path, port), recorder) == 0
    assert recorder.events == [
        "supervisord started for supervisord.conf",
        "services prepared",
        f"supervisord given supervisord.conf, NOETL_PORT={port}",
        "cancel",  # a no-op for one that got its config
    ]


def test_a_failed_check_ends_the_supervisord_started_early(tmp_path: Path) -> None:
    recorder = Recorder()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(NoetlError, match="already in use"):
            run(settings_env(tmp_path, taken.getsockname()[1]), recorder)
    assert recorder.events == ["supervisord started for supervisord.conf", "cancel"]


# `noetl run` as the CLI runs it, in a fresh interpreter, with supervisord's start replaced: it
# prints which of the launcher's modules were loaded when supervisord's process was started.
EARLY_PROBE = """
import sys
from noetl.supervisor import parent


def start(cls, python, environ, paths):
    loaded = [name for name in ("noetl.supervisor.launch", "noetl.supervisor.render") if name in sys.modules]
    print(f"started for {paths.config.name}; loaded: {loaded}")
    raise SystemExit(7)


parent.Supervisord.start = classmethod(start)
from noetl.cli.main import main

sys.exit(main(["run"]))
"""


def test_the_cli_starts_supervisord_before_loading_the_launcher(tmp_path: Path) -> None:
    env = {**settings_env(tmp_path, free_port()), "PATH": os.environ["PATH"]}
    probe = subprocess.run(
        [sys.executable, "-c", EARLY_PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert (probe.returncode, probe.stdout) == (7, "started for supervisord.conf; loaded: []\n"), probe.stderr
