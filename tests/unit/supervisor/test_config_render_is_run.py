"""`noetl config render` prints exactly the config `noetl run` writes, for every role and embedded mode."""

from __future__ import annotations

import io
import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from noetl.cli.main import main
from noetl.settings import ROLES, Settings, load_settings
from noetl.supervisor import embedded, launch
from noetl.supervisor.paths import RunPaths

# How the embedded services are chosen: nothing configured, both configured, forced on, forced off.
MODES: dict[str, dict[str, str]] = {
    "auto, nothing configured": {},
    "auto, both configured": {"POSTGRES_HOST": "db", "NATS_URL": "nats://nats:4222"},
    "always": {"NOETL_EMBEDDED": "always", "POSTGRES_HOST": "db", "NATS_URL": "nats://nats:4222"},
    "never": {"NOETL_EMBEDDED": "never", "POSTGRES_HOST": "db", "NATS_URL": "nats://nats:4222"},
}
# The control socket's credentials are new for every run; render prints the password masked.
CREDENTIALS = re.compile(r"^(username|password)=.*$", re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _written_by_run(env: Mapping[str, str]) -> tuple[str, embedded.Plan]:
    """What `noetl run` writes, stopped where it would start supervisord (nothing spawned)."""
    written: list[str] = []
    planned: list[embedded.Plan] = []

    class Supervisor:
        def supervise(self, paths: RunPaths, child_env: Mapping[str, str]) -> int:
            written.append(paths.config.read_text(encoding="utf-8"))
            return 0

        def cancel(self) -> None:
            return None

    def prepare(
        settings: Settings, what: embedded.Plan, bins: embedded.Binaries, as_root: bool
    ) -> embedded.Secrets:
        planned.append(what)
        return embedded.Secrets()

    settings = load_settings(env)
    code = launch.run(
        settings,
        env,
        sys.executable,
        io.StringIO(),
        start_supervisor=lambda python, environ, paths: Supervisor(),
        prepare_services=prepare,
        check_python=lambda python, user: None,  # the interpreter is not run here
    )
    assert code == 0
    return written[0], planned[0]


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("role", ROLES)
def test_render_prints_what_run_writes(
    role: str, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {
        "HOME": str(tmp_path),
        "NOETL_HOME": str(tmp_path / "home"),
        "NOETL_ROLE": role,
        "NOETL_PORT": str(_free_port()),
        "NOETL_EMBEDDED_POSTGRES_PORT": str(_free_port()),
        "NOETL_EMBEDDED_NATS_PORT": str(_free_port()),
        **MODES[mode],
    }
    written, planned = _written_by_run(env)

    for name in [*os.environ]:
        if name.startswith(("NOETL_", "POSTGRES_", "NATS_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["config", "render"]) == 0
    rendered = capsys.readouterr().out

    assert "password=***" in rendered
    assert CREDENTIALS.sub(r"\1=", rendered) == CREDENTIALS.sub(r"\1=", written)
    # And the embedded programs are there exactly when run embeds them.
    assert ("[program:postgres]" in rendered) is planned.postgres
    assert ("[program:nats]" in rendered) is planned.nats
    assert ("[group:services]" in rendered) is (planned.postgres and planned.nats)
    expected = role != "worker" and mode in ("auto, nothing configured", "always")
    assert planned == embedded.Plan(postgres=expected, nats=expected)
