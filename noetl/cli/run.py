"""`noetl run`: run the server and workers under supervisord in the foreground."""

from __future__ import annotations

import argparse
import os
import sys

from noetl.settings import add_flags, flag_values, load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the server and workers under supervision (the container's CMD)",
        description=(
            "Validate the settings, render the supervisord config into the run dir and run it in the "
            "foreground. SIGTERM/SIGINT stops the workers (in parallel), then the server, then the embedded "
            "services, each within its stop timeout (exit 0); "
            "a second signal kills at once. Exits 1 with one line when a program cannot stay up, "
            "2 on a bad setting, 5 when already running."
        ),
    )
    add_flags(parser, "role", "workers", "host", "port")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from noetl.supervisor.parent import Supervisord
    from noetl.supervisor.paths import RunPaths

    settings = load_settings(flags=flag_values(args))
    # supervisord's process before the launcher's own modules (~35 ms of imports): its imports
    # (~0.12 s) are the longer chain to the programs' start, and now overlap those too. Whatever
    # ends the launcher before the hand-over ends it as well (its stdin closes; it dies with it).
    supervisor = Supervisord.start(sys.executable, os.environ, RunPaths(settings.run_dir))

    from noetl.supervisor.launch import run

    return run(settings, environ=os.environ, python=sys.executable, start_supervisor=lambda *_: supervisor)
