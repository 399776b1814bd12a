"""Helpers to read a rendered config back with supervisor's own parser."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from supervisor.options import ServerOptions


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
