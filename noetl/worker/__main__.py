"""`python -m noetl.worker [--nats-url URL] [--server-url URL] [--concurrency N]`.

Settings come from the environment (see `noetl config check --help`); the flags override them.
Exits 0 after a stop (SIGTERM/SIGINT) once drained, 2 on a bad setting or a refused API token.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from noetl.errors import NoetlError
from noetl.logs import configure_logging
from noetl.procs import not_dumpable
from noetl.settings import add_flags, flag_values, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noetl.worker",
        description="Run one NoETL worker: claim commands announced on NATS, run them, report to the server.",
    )
    add_flags(parser, "nats_url", "server_url", "worker_concurrency")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    not_dumpable()  # its tools run as its user: they must not read its environment or memory
    try:
        settings = load_settings(flags=flag_values(args))
        configure_logging(settings.log_level, settings.log_format, settings.process_name or "worker")
        # httpx logs every request at INFO; the worker logs one line per command state instead.
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
        from noetl.worker.run import serve  # after the settings: a bad one is reported fast

        return asyncio.run(serve(settings, os.environ))
    except NoetlError as exc:
        print(f"noetl worker: {exc}", file=sys.stderr)
        return exc.exit_code


def leave(code: int) -> NoReturn:
    """Exit with ``code`` once the output is written, without the interpreter's teardown.

    When ``main`` returns, the worker has closed all it holds (NATS, the server's connection, its
    templates and keeper). Tearing down the modules it imported (pydantic and the tool kinds
    among them) took 75-125 ms more before the process ended on a busy 2-core machine; under
    `noetl run` a stop waits for it, and the server's stop comes after the workers'.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
