"""What every tool shares: the outcome, readable tool errors, and running a child process.

Children start in a new session (their own process group) so that a timeout, a release or a lost
lease kills the command with everything it started (``os.killpg``). If the worker itself dies,
its keeper (``noetl.tools.keeper``) kills every group still running, so a SIGKILLed worker leaves
no orphan behind. The spawn has no ``preexec_fn`` while a keeper is installed: Python then uses
``vfork()`` instead of copying the worker with ``fork()`` (under 1 ms against ~4 ms a tool).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noetl.procs import killed_with_parent as _die_with_parent
from noetl.tools import keeper

# Bytes of stdout and of stderr kept per command; the rest is counted and dropped.
OUTPUT_LIMIT = 64 * 1024
# How long to wait for the pipes to close once the process group was killed. A grandchild that
# left the group (setsid) could hold them open forever.
_PIPE_GRACE = 2.0


class ToolError(Exception):
    """The tool could not do its job. The message is for people and becomes the `failed` event's error."""

    def __init__(self, message: str, output: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = dict(output) if output is not None else None


@dataclass(frozen=True)
class ToolContext:
    """What the worker gives a tool: the command's time budget and the environment for children."""

    timeout: float
    base_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a tool produced: a result for `completed`, or an error (and partial output) for `failed`."""

    ok: bool
    result: Any = None
    error: str | None = None
    output: Mapping[str, Any] | None = None
    # Context writes of a policy's ``set`` (key -> value, rendered on the worker).
    ctx: Mapping[str, Any] | None = None
    # The attempts a policy retried, in order: {"attempt": 1.., "error", "status" (http), "task"}.
    retries: tuple[Mapping[str, Any], ...] = ()

    def payload(self) -> dict[str, Any]:
        """The event payload: ``{"result": ...}`` or ``{"error": ...}``, plus any ``output``,
        ``ctx`` (a policy's context writes, for the engine) and ``retries`` (retried attempts)."""
        payload: dict[str, Any] = {"result": self.result} if self.ok else {"error": self.error or "failed"}
        if self.output is not None:
            payload["output"] = dict(self.output)
        if self.ctx:
            payload["ctx"] = dict(self.ctx)
        if self.retries:
            payload["retries"] = [dict(r) for r in self.retries]
        return payload


@dataclass(frozen=True)
class Captured:
    """Text captured from one pipe, at most ``OUTPUT_LIMIT`` bytes of it."""

    text: str
    truncated_bytes: int

    def shown(self) -> str:
        """The text with a visible marker when the end was cut off."""
        if not self.truncated_bytes:
            return self.text
        return f"{self.text}\n[truncated: {self.truncated_bytes} more bytes]"


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None when the process was killed on timeout
    stdout: Captured
    stderr: Captured
    timed_out: bool


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid``; nothing left is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Collector:
    """Reads one pipe to its end, keeping the first ``limit`` bytes and counting the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0

    def keep(self, chunk: bytes) -> None:
        room = max(0, self.limit - len(self.kept))
        self.kept += chunk[:room]
        self.dropped += len(chunk) - min(room, len(chunk))

    async def read(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            self.keep(chunk)

    def captured(self) -> Captured:
        return Captured(self.kept.decode("utf-8", errors="replace"), self.dropped)


def use_pidfd_watcher() -> None:
    """Wait for children with a pidfd in the event loop, not a thread per child (Python 3.11's
    default watcher; 3.12 uses pidfds by itself). Call once from the running loop, before the
    first spawn."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return  # a kernel without pidfds (before 5.3): keep the threaded watcher
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.set_child_watcher(watcher)


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def run_process(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: bytes | None = None,
    limit: int = OUTPUT_LIMIT,
) -> ProcessResult:
    """Run ``argv`` in its own process group and capture stdout and stderr up to ``limit`` bytes each.

    After ``timeout`` seconds the whole group is killed and ``timed_out`` is true. When the main
    process exits, whatever it left running in its group is killed too. If the caller is cancelled,
    the group is killed before the cancellation goes on. Raises ``ToolError`` when the program
    cannot be started.
    """
    guard = keeper.current()
    spawn = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd is not None else None,
            start_new_session=True,
            # Only without a keeper: the hook costs a full fork() of the worker per tool.
            preexec_fn=None if guard is not None else _die_with_parent,
        )
    )
    try:
        proc = await asyncio.shield(spawn)
    except asyncio.CancelledError:
        # Cancelled while asyncio still connects the pipes: its own clean-up would kill only the
        # direct child, then wait for the pipes that the child's children hold (a `sleep 300 &`
        # kept a cancelled command alive for 300 s). Let the spawn finish, kill the whole group.
        with contextlib.suppress(Exception):  # a spawn that failed left nothing to kill
            started = await spawn
            kill_group(started.pid)
            await asyncio.wait_for(started.wait(), _PIPE_GRACE)
            if guard is not None:
                guard.forget(started.pid)
        raise
    except FileNotFoundError:
        raise ToolError(f"cannot run {argv[0]!r}: no such program") from None
    except NotADirectoryError:
        raise ToolError(f"cannot run {argv[0]!r}: cwd {str(cwd)!r} is not a directory") from None
    except PermissionError:
        raise ToolError(f"cannot run {argv[0]!r}: permission denied") from None
    except OSError as exc:
        raise ToolError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    if guard is not None:
        guard.watch(proc.pid)

    out, err = Collector(limit), Collector(limit)
    readers = asyncio.gather(out.read(proc.stdout), err.read(proc.stderr))
    timed_out = False
    try:
        if stdin is not None and proc.stdin is not None:
            # The child may exit without reading its input: a broken pipe is its business.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(stdin)
                await proc.stdin.drain()
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
    except BaseException:
        readers.cancel()
        # Mark the cancelled readers' outcome as seen, or asyncio logs a traceback for every
        # release and lost lease ("_GatheringFuture exception was never retrieved").
        readers.add_done_callback(_seen)
        raise
    finally:
        # On timeout, on cancellation and after a normal exit alike: nothing of the command survives.
        kill_group(proc.pid)
        if proc.returncode is None:
            await asyncio.shield(proc.wait())
        if guard is not None:
            guard.forget(proc.pid)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(readers, _PIPE_GRACE)  # cancels the readers when it times out
    return ProcessResult(
        exit_code=None if timed_out else proc.returncode,
        stdout=out.captured(),
        stderr=err.captured(),
        timed_out=timed_out,
    )
