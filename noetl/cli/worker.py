"""`noetl worker start|stop`: the worker role of `noetl run`, in the background with a PID file."""

from __future__ import annotations

import argparse
import os

from noetl.errors import EXIT_OK
from noetl.settings import add_flags, check_name, flag_values, load_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("worker", help="start or stop workers in the background")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "start",
        help="start N supervised workers in the background; PID in $NOETL_HOME/noetl_worker_<name>.pid",
    )
    add_flags(start, "workers")
    start.add_argument("--name", default="default", help="name of this worker set (default: default)")
    start.set_defaults(handler=handle_start)
    stop = actions.add_parser("stop", help="stop them gracefully (they drain), within the stop timeout")
    stop.add_argument("--name", default="default", help="name of the worker set (default: default)")
    stop.add_argument("--force", action="store_true", help="kill them if they have not stopped by then")
    stop.set_defaults(handler=handle_stop)


def handle_start(args: argparse.Namespace) -> int:
    from noetl.supervisor import daemon

    settings = load_settings(flags={**flag_values(args), "role": "worker"})
    inst = daemon.instance(settings, "worker", check_name("--name", args.name))
    pid = daemon.start(settings, inst, os.environ)
    print(
        f"noetl worker {inst.name} started (pid {pid}): {settings.workers} worker(s) -> "
        f"{settings.shown('server_url')}; log {inst.log}; `noetl ctl --run-dir {inst.run_dir} status`"
    )
    return EXIT_OK


def handle_stop(args: argparse.Namespace) -> int:
    from noetl.supervisor import daemon

    settings = load_settings(flags={"role": "worker"})
    inst = daemon.instance(settings, "worker", check_name("--name", args.name))
    print(daemon.stop_and_say(settings, inst, force=args.force))
    return EXIT_OK
