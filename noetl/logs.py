"""One logging setup for every noetl program (server, workers, launcher).

``configure_logging`` installs a single stderr handler on the root logger, in the format the
settings ask for, and routes uvicorn's own loggers through it (uvicorn is started with
``log_config=None``). Text lines read ``time LEVEL logger: message``: under `noetl run` the event
listener puts the process name in front (``worker_00 | ...``), so the program does not. Json lines are
one object each, with the process name in ``process`` (the field the listener adds to other lines).
``json_line`` builds every JSON line noetl writes (these, the event listener's, the launcher's): one
object whose ``time`` is RFC 3339 UTC with milliseconds and ``Z``.
Nothing here logs settings: callers log ``settings.shown(...)`` values only, so secrets stay masked.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

# Attributes every LogRecord has; anything else was passed with ``extra=`` and goes into json lines.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# Loggers of libraries that would otherwise keep their own handlers or be too chatty.
_ROUTED = ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio")
_QUIET = {"nats": logging.WARNING}


class TextFormatter(logging.Formatter):
    """``2024-01-01T12:00:00.123Z INFO noetl.server: message``."""

    def format(self, record: logging.LogRecord) -> str:
        head = f"{timestamp(record.created)} {record.levelname} {record.name}"
        line = f"{head}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, process, logger, message, extras, exception."""

    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "level": record.levelname.lower(),
            "process": self.program,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json_line(data, record.created)


def timestamp(seconds: float | None = None) -> str:
    """``seconds`` since the epoch (default: now) as RFC 3339 UTC: ``2024-01-01T12:00:00.123Z``."""
    if seconds is None:
        seconds = time.time()
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{millis:03d}Z"


def json_line(fields: Mapping[str, Any], seconds: float | None = None) -> str:
    """One JSON line (without the newline): ``time`` first (``timestamp(seconds)``), then ``fields``.

    Values JSON cannot hold are written as ``str(value)``; a ``time`` in ``fields`` wins.
    """
    return json.dumps({"time": timestamp(seconds), **fields}, default=str)


def configure_logging(level: str, fmt: str, program: str, stream: IO[str] | None = None) -> None:
    """Log everything at ``level`` and above to ``stream`` (stderr) as ``fmt`` ("text" or "json")."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(program) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _ROUTED:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, root.level))
