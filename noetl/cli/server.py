"""`noetl server start|stop`: the server role of `noetl run`, in the background with a PID file."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from noetl.errors import EXIT_OK, ProgramFailedError
from noetl.settings import add_flags, flag_values, load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("server", help="start or stop the API server in the background")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "start",
        help="start the server (supervised) in the background; PID in $NOETL_HOME/noetl_server.pid",
    )
    start.add_argument("--init-db", action="store_true", help="create or migrate the schema first")
    add_flags(start, "host", "port")
    start.set_defaults(handler=handle_start)
    stop = actions.add_parser("stop", help="stop it gracefully, within its stop timeout")
    stop.add_argument("--force", action="store_true", help="kill it if it has not stopped by then")
    stop.set_defaults(handler=handle_stop)


def handle_start(args: argparse.Namespace) -> int:
    from noetl.supervisor import daemon

    settings = load_settings(flags={**flag_values(args), "role": "server"})
    inst = daemon.instance(settings, "server")
    if args.init_db:
        env = {**os.environ, **settings.to_env()}
        done = subprocess.run([sys.executable, "-m", "noetl", "db", "init"], env=env, check=False)
        if done.returncode != 0:
            raise ProgramFailedError(
                "the schema could not be created (see the line above); server not started"
            )
    pid = daemon.start(settings, inst, os.environ)
    print(
        f"noetl server started (pid {pid}) on http://{settings.host}:{settings.port}; "
        f"log {inst.log}; `noetl ctl --run-dir {inst.run_dir} status`"
    )
    return EXIT_OK


def handle_stop(args: argparse.Namespace) -> int:
    from noetl.supervisor import daemon

    settings = load_settings(flags={"role": "server"})
    print(daemon.stop_and_say(settings, daemon.instance(settings, "server"), force=args.force))
    return EXIT_OK
