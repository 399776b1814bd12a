"""`noetl ctl`: inspect and drive a running `noetl run` through supervisord's control socket."""

from __future__ import annotations

import sys
import time

from noetl.errors import EXIT_NOT_RUNNING, EXIT_OK
from noetl.settings import add_flags, flag_values, load_settings

TYPE_CHECKING = False  # typing costs ~4 ms to import; mypy and ruff read this name as its
if TYPE_CHECKING:
    import argparse  # `noetl ctl status` runs without it (noetl.cli.main)
    from collections.abc import Mapping
    from typing import Any

    from noetl.supervisor.control import Control


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ctl",
        help="status/start/stop/restart/signal/tail/reload/shutdown of the supervised programs",
        description=(
            "Talk to the supervisord of a running `noetl run` over its control socket in the run dir. "
            "NAME is a process (server, worker_00), a group (workers, services) or all."
        ),
    )
    add_flags(parser, "run_dir")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    status = actions.add_parser(
        "status",
        help="state, pid, uptime, RSS and CPU%% of each process",
        description="Exit 0 when every process is RUNNING, 3 when some are not, 4 when noetl is not running.",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=handle_status)

    for name, text in (("start", "start"), ("stop", "stop (gracefully)"), ("restart", "stop, then start")):
        sub = actions.add_parser(name, help=f"{text} NAME")
        sub.add_argument("name", metavar="NAME")
        sub.set_defaults(handler=handle_action, verb=name)

    sig = actions.add_parser("signal", help="send a signal (TERM, HUP, USR1, KILL, ...) to NAME")
    sig.add_argument("signal", metavar="SIG")
    sig.add_argument("name", metavar="NAME")
    sig.set_defaults(handler=handle_signal)

    tail = actions.add_parser("tail", help="print the end of NAME's output")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    tail.add_argument("--stderr", action="store_true", help="stderr instead of stdout")
    tail.add_argument("--bytes", type=int, default=4000, help="how much to print first (default 4000)")
    tail.add_argument("name", metavar="NAME")
    tail.set_defaults(handler=handle_tail)

    reload = actions.add_parser("reload", help="restart supervisord and every program with the same config")
    reload.set_defaults(handler=handle_reload)
    shutdown = actions.add_parser("shutdown", help="stop everything; `noetl run` then exits 0")
    shutdown.set_defaults(handler=handle_shutdown)


def _control(args: argparse.Namespace) -> Control:
    return _control_of(flag_values(args))


def _control_of(flags: Mapping[str, Any]) -> Control:
    from noetl.supervisor.control import Control
    from noetl.supervisor.paths import RunPaths

    settings = load_settings(flags=flags)
    return Control(RunPaths(settings.run_dir))


def handle_status(args: argparse.Namespace) -> int:
    return status(flag_values(args), as_json=args.json)


def status(flags: Mapping[str, Any], as_json: bool) -> int:
    """Print each process's state; 0 when every one is RUNNING, 3 when some are not."""
    from noetl.supervisor.ctl_status import rows
    from noetl.supervisor.ctl_table import as_json as json_text
    from noetl.supervisor.ctl_table import table

    result = rows(_control_of(flags).processes())
    print(json_text(result) if as_json else table(result))
    return EXIT_OK if result and all(row.state == "RUNNING" for row in result) else EXIT_NOT_RUNNING


def handle_action(args: argparse.Namespace) -> int:
    control = _control(args)
    name = control.resolve(args.name)
    getattr(control, args.verb)(name)
    print(f"{args.name}: {args.verb} done")
    return EXIT_OK


def handle_signal(args: argparse.Namespace) -> int:
    control = _control(args)
    name = control.resolve(args.name)
    control.signal(args.signal.upper().removeprefix("SIG"), name)
    print(f"{args.name}: sent SIG{args.signal.upper().removeprefix('SIG')}")
    return EXIT_OK


def handle_tail(args: argparse.Namespace) -> int:
    control = _control(args)
    name = control.resolve(args.name)
    text, offset, _ = control.tail(name, 0, max(args.bytes, 0), stderr=args.stderr)
    sys.stdout.buffer.write(text)
    sys.stdout.flush()
    while args.follow:
        time.sleep(0.5)
        text, size, overflow = control.tail(name, offset, FOLLOW_CHUNK, stderr=args.stderr)
        fresh = beyond(text, offset, size, overflow)
        offset = size
        if fresh:
            sys.stdout.buffer.write(fresh)
            sys.stdout.flush()
    return EXIT_OK


FOLLOW_CHUNK = 65536  # bytes asked for on each poll of `tail -f`


def beyond(answer: bytes, offset: int, size: int, overflow: bool) -> bytes:
    """The part of a tail ``answer`` written after ``offset``, the log being ``size`` bytes now.

    supervisord answers a tail with the *last* bytes of the log, as many as were asked for: those
    before ``offset`` too, which were printed already. With ``overflow`` more was written than
    asked for, and the answer is all new (the end of it)."""
    if overflow:
        return answer
    fresh = size - offset
    return answer[-fresh:] if fresh > 0 else b""


def handle_reload(args: argparse.Namespace) -> int:
    _control(args).reload()
    print("reloading: supervisord restarts every program")
    return EXIT_OK


def handle_shutdown(args: argparse.Namespace) -> int:
    _control(args).shutdown()
    print("shutting down: every program stops, then `noetl run` exits")
    return EXIT_OK
