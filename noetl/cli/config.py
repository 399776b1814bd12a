"""`noetl config render|check`: show the supervisord config and validate the settings."""

from __future__ import annotations

import argparse
import sys

from noetl.errors import EXIT_OK
from noetl.settings import add_flags, describe_fields, flag_values, load_settings


def _settings_help() -> str:
    lines = ["settings (environment variable / key in the NOETL_CONFIG TOML file, default):"]
    for env, key, default, help_text in describe_fields():
        lines.append(f"  {env:<26} {key:<20} {default or '(unset)'}")
        lines.append(f"      {help_text}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("config", help="render the supervisord config or check the settings")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    render = actions.add_parser(
        "render", help="print the supervisord config `noetl run` would write (control password masked)"
    )
    add_flags(render, "role")
    render.set_defaults(handler=handle_render)
    check = actions.add_parser(
        "check",
        help="validate the settings and print them (secrets masked); exit 0, or 2 with the bad one",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.set_defaults(handler=handle_check)


def handle_render(args: argparse.Namespace) -> int:
    import os

    from noetl.supervisor.assembly import assemble
    from noetl.supervisor.render import ControlAuth, masked, render

    settings = load_settings(flags=flag_values(args))
    # The same assembly and rendering as `noetl run` (supervisor/launch.py), nothing written.
    what = assemble(settings, sys.executable, run_as_root=os.geteuid() == 0)
    control = ControlAuth.new()
    sys.stdout.write(masked(render(what, control), control))
    return EXIT_OK


def handle_check(args: argparse.Namespace) -> int:
    from noetl.settings import FIELDS

    settings = load_settings()
    for name, field in FIELDS.items():
        print(f"{field.env}={settings.shown(name)}  ({settings.sources.get(name, 'default')})")
    return EXIT_OK
