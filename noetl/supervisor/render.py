"""An ``Assembly`` -> supervisord configuration text. Pure: no files written, no environment read.

The caller (``launch.py``) writes the text with mode 0600; `noetl config render` prints it. Every
value that reaches the file goes through ``ini_value``, which doubles ``%`` (supervisord %-expands
every option) and refuses what could end a line or start a comment; commands are quoted with
``shlex`` as supervisord splits them.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from noetl.errors import ConfigError
from noetl.protocol.programs import snapshot_path
from noetl.settings import Settings
from noetl.supervisor.assembly import Assembly, assemble, placeholder_binaries
from noetl.supervisor.paths import RunPaths
from noetl.supervisor.programs import GROUP_PRIORITY, Program, group_names

LISTENER_STOPWAITSECS = 2
# A margin per group stopped. supervisord's own loop acted on a stop once per 1-second pass; the
# loop `noetl run` runs (prompt.py) acts at once, so this is slack for a loaded machine now.
SUPERVISORD_TICK = 1.0


@dataclass(frozen=True)
class ControlAuth:
    """Credentials of the control socket: new and random for every run."""

    username: str
    password: str

    @classmethod
    def new(cls) -> ControlAuth:
        return cls(username="noetl-" + secrets.token_hex(4), password=secrets.token_urlsafe(24))


def max_stop_seconds(settings: Settings, programs: Sequence[Program] | None = None) -> float:
    """The longest `noetl run` may take from SIGTERM to exit with this configuration.

    supervisord stops the programs of one group in parallel and the groups one after another:
    the workers (their stopwaitsecs), then the server, then the embedded services, then the event
    listener, each plus a margin, plus one for supervisord's own exit. A container's grace
    period must be longer than this. ``programs`` defaults to what `noetl run` would supervise.
    """
    if programs is None:
        programs = assemble(settings, "python", False, placeholder_binaries).programs
    groups: dict[str, int] = {}
    for program in programs:
        groups[program.group] = max(groups.get(program.group, 0), program.stopwaitsecs)
    groups["listener"] = LISTENER_STOPWAITSECS
    return float(sum(groups.values()) + SUPERVISORD_TICK * (len(groups) + 1))


_INLINE_COMMENT = (" ;", "\t;", " #", "\t#")


def ini_value(value: object) -> str:
    """Escape one value for supervisord's INI format, or refuse it."""
    text = str(value)
    if any(ch in text for ch in "\r\n\x00") or any(mark in text for mark in _INLINE_COMMENT):
        raise ConfigError(
            f"{text!r} cannot be written to the supervisord configuration "
            "(no line breaks, NUL, or ';'/'#' after a space)"
        )
    return text.replace("%", "%%")


def command_line(argv: Sequence[str]) -> str:
    """A command as supervisord parses it (shlex), ready for ``ini_value``."""
    return " ".join(shlex.quote(arg) for arg in argv)


def template_text() -> str:
    """The template: inside the installed package, or at conf/ in a checkout."""
    packaged = resources.files("noetl").joinpath("conf", "supervisord.conf.j2")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[2] / "conf" / "supervisord.conf.j2"
    return checkout.read_text(encoding="utf-8")


def render(what: Assembly, control: ControlAuth) -> str:
    """Render the supervisord configuration of ``what`` (see ``assembly.assemble``).

    ``control`` holds the control-socket credentials: new for every run.
    """
    import jinja2

    settings = what.settings

    env = jinja2.Environment(
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ini"] = ini_value
    paths = RunPaths(settings.run_dir)
    listener = [
        what.python,
        "-m",
        "noetl.supervisor.listener",
        "--failure-file",
        str(paths.failure),
        "--format",
        settings.log_format,
        # The server's window on the programs: it never gets the control socket (protocol/programs.py).
        "--programs-file",
        str(snapshot_path(settings.home)),
    ]
    if what.run_as_root:
        listener += ["--readable-by", settings.user]
    everything = what.programs
    programs = [
        {
            "name": p.name,
            "command": command_line(p.command),
            "numprocs": p.numprocs,
            "process_name": p.process_name,
            "priority": p.priority,
            "startsecs": p.startsecs,
            "startretries": p.startretries,
            "stopwaitsecs": p.stopwaitsecs,
            "stopsignal": p.stopsignal,
            "stopasgroup": "true" if p.stopasgroup else "false",
            "user": p.user,
            "environment": ",".join(f'{name}="{value}"' for name, value in p.environment),
        }
        for p in everything
    ]
    groups = []
    for name in group_names(everything):
        members = [p.name for p in everything if p.group == name]
        if members != [name]:  # a program alone in a group of its own name needs no [group:] section
            groups.append({"name": name, "priority": GROUP_PRIORITY[name], "programs": ",".join(members)})
    return env.from_string(template_text()).render(
        role=settings.role,
        log_format=settings.log_format,
        supervisord_loglevel="warn" if settings.log_level in ("warning", "error", "critical") else "info",
        paths=paths,
        control=control,
        run_as_root=what.run_as_root,
        listener_command=command_line(listener),
        listener_stopwaitsecs=LISTENER_STOPWAITSECS,
        programs=programs,
        groups=groups,
    )


def masked(text: str, control: ControlAuth) -> str:
    """The rendered text with the control password hidden, for `noetl config render`."""
    return text.replace(ini_value(control.password), "***")
