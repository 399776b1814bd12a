"""Helpers to render a config as `noetl run` does and read it back with supervisor's own parser."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from supervisor.options import ServerOptions

from noetl.settings import Settings
from noetl.supervisor.assembly import assemble
from noetl.supervisor.embedded import Binaries
from noetl.supervisor.render import ControlAuth
from noetl.supervisor.render import render as render_assembly

# Fixed paths for the embedded services' binaries, so the golden files do not depend on the machine.
BINS = Binaries(postgres="/pg/bin/postgres", initdb="/pg/bin/initdb", nats_server="/venv/bin/nats-server")


def render(settings: Settings, control: ControlAuth, python: str, run_as_root: bool = False) -> str:
    """The config `noetl run` would write for ``settings`` (embedded binaries at BINS)."""
    return render_assembly(assemble(settings, python, run_as_root, lambda what, s: BINS), control)


def parse_with_supervisor(text: str, tmp: Path) -> Any:
    """Parse and validate ``text`` exactly as supervisord would; returns its ServerOptions."""
    path = tmp / "parsed.conf"
    path.write_text(text)
    options = ServerOptions()
    options.realize(args=["-c", str(path)])
    assert not options.parse_criticals, options.parse_criticals
    return options


def argv_of(options: Any) -> dict[str, list[str]]:
    """Process name -> argv as supervisord would exec it."""
    return {
        process.name: shlex.split(process.command)
        for group in options.process_group_configs
        for process in group.process_configs
    }
