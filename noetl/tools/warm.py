"""Warm templates: the python and duckdb tools' processes are forked from a clean template process
the worker keeps running (``warm_template``), not started as fresh interpreters (~1 ms, not ~30).

A template is started per runner and per tool environment, with exactly that environment: a
command's process gets what a fresh interpreter started with it would get, and nothing of the
worker's. No user code ever runs in a template; it holds the standard library, the runner and the
``preload`` modules imported. Each command's process is forked from it with a session of its own:
the worker kills it as a process group (``os.killpg`` on the pid the template reports) on timeout,
cancellation or a lost lease, and the template kills what the command left in its group when it
exits. Its memory, modules and globals die with it. A template dies with its worker (parent-death
signal) and its commands with it; one that died is started again for the next command, and a
command that it took with it fails saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noetl.tools import keeper
from noetl.tools.base import OUTPUT_LIMIT, Captured, Collector, ToolError, kill_group
from noetl.tools.warm_mark import MARK, SPARE_NAME

_TEMPLATE = Path(__file__).with_name("warm_template.py")
# The template's own program runs from its file as `__main__`, like `python -c` would run it.
_BOOT = "import sys; exec(compile(open(sys.argv[1], encoding='utf-8').read(), sys.argv[1], 'exec'))"
# How long to wait for the pipes to close once the process group was killed (a grandchild that
# left the group could hold them open), and for the template's exit report after a kill.
_PIPE_GRACE = 2.0
_EXIT_GRACE = 5.0
# How long a template told to stop (its control socket closed) has to leave by itself.
_STOP_GRACE = 0.5


@dataclass(frozen=True)
class Finished:
    """How a command's process ended. ``exit_code`` is negative for a signal, ``None`` when it was
    killed on timeout or went with its template (``with_template``)."""

    exit_code: int | None
    stdout: Captured
    stderr: Captured
    timed_out: bool
    with_template: bool = False


class _TemplateGone(Exception):
    """The template died before it started the command: nothing of the command ran."""

    def __init__(self, proc: subprocess.Popen[bytes] | None) -> None:
        super().__init__()
        self.proc = proc


async def _ready(fd: int, *, write: bool = False) -> None:
    """Until ``fd`` can be read (or written) without blocking."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if write:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        (loop.remove_writer if write else loop.remove_reader)(fd)


async def _collect(fd: int, into: Collector) -> None:
    """Read the pipe ``fd`` (not an asyncio stream: the template handed it over) to its end."""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            await _ready(fd)
            continue
        if not chunk:
            return
        into.keep(chunk)


async def _feed(fd: int, data: bytes, ours: _Fds) -> None:
    """Write ``data`` to the command's stdin and close it; a command that exits without reading
    its input is its own business."""
    os.set_blocking(fd, False)
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _ready(fd, write=True)
        except (BrokenPipeError, ConnectionResetError):
            return
    ours.close(fd)


async def _message(channel: socket.socket, word: str) -> int | None:
    """The number of the template's next ``word N`` message; ``None`` when the channel closed
    (the template died)."""
    try:
        data = await asyncio.get_running_loop().sock_recv(channel, 64)
    except OSError:
        return None
    said, _, number = data.decode(errors="replace").partition(" ")
    return int(number) if said == word and number.lstrip("-").isdigit() else None


class Template:
    """One template process (started again when it died) and its control socket."""

    def __init__(self, runner: Path, env: Mapping[str, str], preload: Sequence[str], setting: str) -> None:
        self.runner = runner
        self.env = dict(env)
        self.preload = tuple(preload)
        self.setting = setting
        self.proc: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> None:
        """Start the template unless it runs. Called on the event loop's thread: the template's
        parent-death signal follows the thread that started it."""
        if self.alive():
            return
        self.stop()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {
            "parent": os.getpid(),
            "control": theirs.fileno(),
            "runner": str(self.runner),
            "preload": list(self.preload),
            "setting": self.setting,
            "spare_name": SPARE_NAME,
        }
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(_TEMPLATE), MARK, json.dumps(config)],
                # stdin at its end, as a command's is once its request is read; anything the
                # template prints (a preload that cannot be imported) goes to the worker's log.
                stdin=subprocess.PIPE,
                stdout=2,
                env=self.env,
                cwd="/",
                pass_fds=(theirs.fileno(),),
                start_new_session=True,  # not in the worker's group: a Ctrl-C there is the worker's
            )
        except OSError as exc:
            mine.close()
            raise ToolError(f"cannot start the warm {_kind(self.runner)} template: {exc}") from None
        finally:
            theirs.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        mine.setblocking(False)
        self.control = mine

    def stop(self) -> None:
        """Close the control socket and let the template go (its commands die with it): it leaves
        by itself at once, reaping its spare child; killed if it does not."""
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.wait(_STOP_GRACE)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def replace(self, dead: subprocess.Popen[bytes] | None) -> None:
        """Start a new template if ``dead`` (which a command saw die) is still the current one;
        commands that saw the same death replace it once."""
        if dead is not None and dead is self.proc:
            self.stop()
            self.ensure()

    async def send(self, header: bytes, fds: list[int]) -> None:
        """One request; ``_TemplateGone`` when the template is not there to take it."""
        if self.control is None:
            raise _TemplateGone(self.proc)
        while True:
            try:
                socket.send_fds(self.control, [header], fds)
                return
            except BlockingIOError:
                await _ready(self.control.fileno(), write=True)
            except OSError:  # EPIPE, ECONNRESET: the template died
                raise _TemplateGone(self.proc) from None

    async def run(self, argv: Sequence[str], cwd: str, stdin: bytes, timeout: float, limit: int) -> Finished:
        """Run one command in a process forked from this template, all within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ours = _Fds(in_w, out_r, err_r)
        proc = self.proc
        try:
            try:
                header = json.dumps({"argv": list(argv), "cwd": cwd}).encode()
                await self.send(header, [theirs.fileno(), in_r, out_w, err_w])
            finally:
                for fd in (in_r, out_w, err_w):
                    os.close(fd)
                theirs.close()
            channel.setblocking(False)
            try:  # a template still importing its preload answers late; the budget is the command's
                pid = await asyncio.wait_for(_message(channel, "pid"), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return Finished(None, Captured("", 0), Captured("", 0), timed_out=True)
            if pid is None:
                raise _TemplateGone(proc)
            # Only now does the command get its input: a command whose template died before
            # saying its pid never read it, so it may be started again on the next template.
            out, err = Collector(limit), Collector(limit)
            feed = asyncio.ensure_future(_feed(in_w, stdin, ours))
            readers = [asyncio.ensure_future(_collect(fd, into)) for fd, into in ((out_r, out), (err_r, err))]
            exited = asyncio.ensure_future(_message(channel, "exit"))
            # The command dies with its template, and the template with the worker; what the
            # command started in its group does not: the worker's keeper kills that group.
            guard = keeper.current()
            if guard is not None:
                guard.watch(pid)
            try:
                timed_out = await self._wait(pid, exited, [feed, *readers], deadline)
            finally:
                if guard is not None:
                    guard.forget(pid)
            code = exited.result() if exited.done() and not exited.cancelled() else None
            gone = code is None and not timed_out
            if gone:
                self.replace(proc)  # the next command finds a new template ready
            return Finished(
                exit_code=None if timed_out else code,
                stdout=out.captured(),
                stderr=err.captured(),
                timed_out=timed_out,
                with_template=gone,
            )
        finally:
            channel.close()
            ours.close_all()

    @staticmethod
    async def _wait(
        pid: int, exited: asyncio.Future[int | None], tasks: list[asyncio.Future[None]], deadline: float
    ) -> bool:
        """Until the command's process exited (True: killed at ``deadline``); on the way out, by
        any path, nothing of the command survives and its pipes' tasks are done (so that their
        descriptors can be closed)."""
        loop = asyncio.get_running_loop()
        feed, readers = tasks[0], tasks[1:]
        timed_out = False
        interrupted = True
        try:
            try:
                await asyncio.wait_for(asyncio.shield(exited), max(0.0, deadline - loop.time()))
            except TimeoutError:
                timed_out = True
            interrupted = False
        finally:
            if not exited.done() or exited.result() is None:
                # Timed out, cancelled, or its template died: its whole group goes.
                kill_group(pid)
            if not exited.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), _EXIT_GRACE)
            feed.cancel()  # the command ended: what it did not read, it will not
            if not interrupted:
                # A grandchild that left the group may hold the pipes open: not for long.
                await asyncio.wait(readers, timeout=_PIPE_GRACE)
            everything: list[asyncio.Future[Any]] = [*tasks, exited]
            for task in everything:
                task.cancel()
                task.add_done_callback(_seen)
            await asyncio.wait(everything)
        return timed_out


class _Fds:
    """Our ends of a command's pipes; each closed once."""

    def __init__(self, *fds: int) -> None:
        self.open = set(fds)

    def close(self, fd: int) -> None:
        if fd in self.open:
            self.open.discard(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in list(self.open):
            self.close(fd)


def _kind(runner: Path) -> str:
    return runner.stem.removesuffix("_runner")


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


_templates: dict[tuple[str, tuple[tuple[str, str], ...]], Template] = {}


def start(runner: Path, env: Mapping[str, str], preload: Sequence[str] = (), setting: str = "") -> Template:
    """The template of ``runner`` for ``env``, started (with ``preload`` imported, ``setting``
    naming that list in warnings) unless it runs already."""
    key = (str(runner), tuple(sorted(env.items())))
    template = _templates.get(key)
    if template is None:
        template = _templates[key] = Template(runner, env, preload, setting)
    template.ensure()
    return template


def stop_all() -> None:
    """Stop every template of this process (the worker's last step)."""
    for template in _templates.values():
        template.stop()
    _templates.clear()


def template_pids() -> list[int]:
    """The pids of this process's running templates."""
    return [t.pid for t in _templates.values() if t.alive() and t.pid is not None]


async def run(
    runner: Path,
    *,
    argv: Sequence[str],
    cwd: str,
    stdin: bytes,
    env: Mapping[str, str],
    timeout: float,
    preload: Sequence[str] = (),
    setting: str = "",
    limit: int = OUTPUT_LIMIT,
) -> Finished:
    """Run ``runner``'s ``main(argv)`` in a process forked from its warm template for ``env``,
    with ``stdin`` as its input, in ``cwd``; stdout and stderr captured up to ``limit`` bytes each.
    After ``timeout`` seconds the command's process group is killed and ``timed_out`` is true.
    Raises ``ToolError`` when no template can be started."""
    for tries_left in (1, 0):
        template = start(runner, env, preload, setting)
        try:
            return await template.run(argv, cwd, stdin, timeout, limit)
        except _TemplateGone as gone:
            template.replace(gone.proc)
            if not tries_left:
                raise ToolError(
                    f"the warm {_kind(runner)} template died twice before starting the command; "
                    "see the worker's log"
                ) from None
    raise AssertionError("unreachable")
