"""Tools whose work runs in a child process (python, duckdb): a runner script that needs only
the standard library reads a JSON request on stdin and writes a JSON answer to a file. The child
is forked from the runner's warm template (``warm``), in a fresh temporary directory.

The child runs the user's code as the worker's user, so it could put a link (or a FIFO) where the
answer goes: the answer is opened without following links and without blocking, only a regular
file is read, at most ``ANSWER_LIMIT`` bytes, and in a thread unless it is small, so that other
jobs' heartbeats go on.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from noetl.tools import warm
from noetl.tools.base import ToolContext
from noetl.tools.warm import Finished

# The largest answer read back; a bigger one fails with a readable message.
ANSWER_LIMIT = 8 * 1024 * 1024
# An answer up to this size is read on the event loop (a few microseconds); a bigger one in a thread.
_SMALL = 64 * 1024


async def run_child(
    runner: Path,
    request: Mapping[str, Any],
    ctx: ToolContext,
    prefix: str,
    preload: Sequence[str] = (),
    setting: str = "",
) -> tuple[Finished, dict[str, Any] | None]:
    """Run ``runner``'s ``main`` in a process of its own, in a fresh temporary directory, as
    ``python -c RUNNER ANSWER_FILE`` would (``sys.argv`` is ``["-c", ANSWER_FILE]``); how it
    ended and its answer (``None`` when it wrote none: it died or was killed first). ``preload``
    is imported in the runner's template when it starts (``setting`` names that list)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        answer_path = Path(tmp) / "answer.json"
        done = await warm.run(
            runner,
            argv=["-c", str(answer_path)],
            cwd=tmp,
            stdin=json.dumps(request).encode(),
            env=ctx.base_env,
            timeout=ctx.timeout,
            preload=preload,
            setting=setting,
        )
        answer = await _answer(answer_path)
    return done, answer


async def _answer(path: Path) -> dict[str, Any] | None:
    """``read_answer``, in a thread unless the answer is a small file (most are: a thread's hand-over
    costs more than reading them)."""
    try:
        info = os.lstat(path)
    except OSError:
        info = None
    if info is not None and stat.S_ISREG(info.st_mode) and info.st_size <= _SMALL:
        return read_answer(path)  # checked again as it is opened: no link, no FIFO, capped
    return await asyncio.to_thread(read_answer, path)


def read_answer(path: Path) -> dict[str, Any] | None:
    """The child's answer, read as the module docstring says."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return {"error": "the answer file was replaced by a symbolic link; not followed"}
        raise
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            return {"error": "the answer file was replaced by something other than a file; not read"}
        if info.st_size > ANSWER_LIMIT:
            return {"error": f"the answer is {info.st_size} bytes of JSON; the limit is {ANSWER_LIMIT}"}
        raw = fh.read(ANSWER_LIMIT + 1)
    if len(raw) > ANSWER_LIMIT:
        return {"error": f"the answer is over {ANSWER_LIMIT} bytes of JSON; the limit is {ANSWER_LIMIT}"}
    try:
        answer = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None  # the process died while writing it
    return answer if isinstance(answer, dict) else None


def died(done: Finished) -> str:
    """How a child that gave no answer ended: ``was killed by signal 9``, ``exited with code 1`` or
    ``was killed with its template``."""
    if done.with_template:
        return "was killed with its warm template (the template process died)"
    code = done.exit_code
    return f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
