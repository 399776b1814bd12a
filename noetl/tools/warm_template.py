"""The warm template process of a child tool (python, duckdb): a fork server.

Started by the worker (``noetl.tools.warm``) as ``python -c BOOT THIS_FILE MARK CONFIG`` (MARK:
``warm_mark``), with the
environment a tool's child gets and no other: it imports the standard-library modules the runner
uses, the runner itself and the modules of ``preload``, then serves requests. It never runs user
code. Standard library only: it is not imported as part of noetl.

A request is one message on the control socket (the descriptor ``control`` of CONFIG), ``{"argv":
[...], "cwd": "..."}``, with four descriptors: the request's channel, then the stdin, stdout and
stderr of the command. The command's process starts a session of its own (its process group is the
command's), dies with the template, makes stdin/stdout/stderr its 0/1/2, closes everything else,
goes to ``cwd`` and runs the runner's ``main(argv)`` as a fresh interpreter would, then exits. The
template writes ``pid N`` on the channel at once and ``exit CODE`` (a negative code: the signal)
when the child ended, after killing what the child left in its group, then closes the channel. When
the worker closes the control socket, or dies, the template exits, and its children with it.

The command's process is forked ahead of time when it can be: while no command runs, the template
keeps one spare child, already in its own session and dying with the template, that waits for a
request (handed over on a socket of its own) and then becomes the command. So a command does not
wait for the fork (~1-2 ms of copying page tables and first faults on a 2-core machine); a request
that finds no spare (commands running at once) is forked there and then. The spare runs nothing
before its request, holds no descriptor but its socket, stays non-dumpable until then and is named
``spare_name`` (CONFIG) meanwhile, so that it is told from a running command.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import traceback
import types
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_SET_NAME = 15
_PR_GET_NAME = 16
# A request's header is small (argv and cwd); the command's data goes through its own stdin.
_HEADER_LIMIT = 64 * 1024
_FDS = 4
# What the runners import, plus what user code most often imports: loaded once, here.
_STDLIB = (
    "ast",
    "base64",
    "collections",
    "contextlib",
    "datetime",
    "decimal",
    "functools",
    "importlib",
    "inspect",
    "itertools",
    "json",
    "math",
    "pathlib",
    "re",
    "subprocess",
    "threading",
    "traceback",
    "types",
    "typing",
    "uuid",
)

_prctl: Any = None


def _set(option: int, value: int | bytes | ctypes.Array[ctypes.c_char]) -> None:
    """prctl(option, value) where there is one (Linux); looked up in the template only."""
    global _prctl
    if _prctl is None:
        try:
            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):  # not Linux: no parent-death signal, no dumpable flag
            _prctl = False
    if _prctl:
        _prctl(option, value, 0, 0, 0)


def _name() -> bytes:
    """This process's name (what ``ps`` and psutil's ``name()`` show), empty where unknown."""
    buffer = ctypes.create_string_buffer(16)
    _set(_PR_GET_NAME, buffer)
    return buffer.value


def _load_runner(path: str) -> types.ModuleType:
    """The runner's source as a module of its own (its ``if __name__ == "__main__"`` stays off)."""
    module = types.ModuleType("noetl_tool_runner")
    module.__file__ = path
    with open(path, encoding="utf-8") as fh:
        exec(compile(fh.read(), path, "exec"), module.__dict__)
    return module


def _preload(names: list[str], setting: str) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any failure of an import is the same news
            print(
                f"noetl warm template: {setting}: cannot import {name!r} ({type(exc).__name__}: {exc}); "
                "commands run without it preloaded",
                file=sys.stderr,
                flush=True,
            )


def _exit_like_an_interpreter(code: int) -> None:
    """What a normal interpreter exit does for the code (wait for its threads, run its atexit
    functions, flush), then leave without tearing down the template's state."""
    with contextlib.suppress(BaseException):
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code & 0xFF)


def _child(runner: types.ModuleType, header: dict[str, Any], stdio: list[int], template: int | None) -> None:
    """In a forked child: become the command's process, run the runner, exit. Never returns.
    ``template``: the template's pid when the child was forked for this request (a spare
    detached itself when it was forked: None)."""
    code = 1
    try:
        if template is not None:
            _detach(template)
        _become_the_command(header, stdio)
        code = int(runner.main(sys.argv) or 0)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # printed as an interpreter prints what ends it
        traceback.print_exc()
        code = 1
    finally:
        _exit_like_an_interpreter(code)


def _detach(template: int) -> None:
    """Its own session and process group (the worker kills the command as a group), dying with
    the template, with the signal handling of a fresh process."""
    os.setsid()
    _set(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != template:  # the template died before the line above
        os._exit(1)
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def _become_the_command(header: dict[str, Any], stdio: list[int]) -> None:
    """Dumpable as an exec'd child would be, the given stdin/stdout/stderr and nothing else, in
    ``cwd`` with ``argv``."""
    _set(_PR_SET_DUMPABLE, 1)  # the template stays closed
    for target, fd in zip((0, 1, 2), stdio, strict=True):
        os.dup2(fd, target)
    # The control socket, the other commands' channels, the wake-up pipe, the selector: gone.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    os.chdir(header["cwd"])
    sys.argv = list(header["argv"])


def _spare(
    runner: types.ModuleType, handover: socket.socket, template: int, names: tuple[bytes, bytes]
) -> None:
    """In a spare child: detach now, wait for the one request the template hands over, then
    become its command. Exits when the template lets it go (closes the socket). Never returns."""
    spare_name, command_name = names
    try:
        _detach(template)
        keep = handover.fileno()
        os.closerange(3, keep)  # nothing of the template's but the hand-over socket
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        _set(_PR_SET_NAME, spare_name)
        header, stdio, _, _ = socket.recv_fds(handover, _HEADER_LIMIT, _FDS - 1)
        if len(stdio) != _FDS - 1:
            os._exit(0)
        _set(_PR_SET_NAME, command_name)
        request = json.loads(header)
    except BaseException:  # nothing of a command ran: nothing to report but the exit code
        os._exit(1)
    _child(runner, request, stdio, None)


class Server:
    """The template's loop: requests in, children out, exits reported."""

    def __init__(self, runner: types.ModuleType, control: int, spare_name: str = "") -> None:
        self.runner = runner
        self.pid = os.getpid()
        self.names = (spare_name.encode()[:15], _name())
        self.spare: tuple[int, socket.socket] | None = None  # its pid, the socket to hand over on
        self.control = socket.socket(fileno=control)
        self.control.setblocking(True)
        self.running: dict[int, socket.socket] = {}
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # the wake-up fd needs a handler to fire
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.control, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    def serve(self) -> None:
        while True:
            if self.spare is None and not self.running:
                # Only while no command runs: forking next to a running command slows it down.
                self._fork_spare()
            for key, _ in self.selector.select():
                if key.fileobj is self.control and not self._request():
                    self._end_spare()
                    return
                if key.fileobj == self.wake_r:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_r, 512):
                            pass
            self._reap()

    def _fork_spare(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError:  # no spare now (the next request forks for itself, failing as it fails)
            mine.close()
            theirs.close()
            return
        if pid == 0:
            mine.close()
            _spare(self.runner, theirs, self.pid, self.names)
        theirs.close()
        self.spare = (pid, mine)

    def _end_spare(self) -> None:
        """Kill and reap the spare (the template is leaving): no zombie is left to whoever
        inherits it."""
        if self.spare is None:
            return
        pid, handover = self.spare
        self.spare = None
        handover.close()
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

    def _start(self, header: bytes, request: dict[str, Any], stdio: list[int]) -> int:
        """The pid of the command's process: the spare, given the request, or a new fork."""
        if self.spare is not None:
            pid, handover = self.spare
            self.spare = None
            try:
                socket.send_fds(handover, [header], stdio)
                return pid
            except OSError:
                pass  # the spare died: reaped with the others; fork as if there was none
            finally:
                handover.close()
        pid = os.fork()
        if pid == 0:
            _child(self.runner, request, stdio, self.pid)
        return pid

    def _request(self) -> bool:
        """Take one request; False when the worker closed the control socket."""
        try:
            header, fds, _, _ = socket.recv_fds(self.control, _HEADER_LIMIT, _FDS)
        except OSError:
            return False
        if not header and not fds:
            return False
        if len(fds) != _FDS:
            for fd in fds:
                os.close(fd)
            return True  # not a request of ours: nothing to answer on
        try:
            request = json.loads(header)
        except ValueError:
            request = None
        channel = socket.socket(fileno=fds[0])
        if not isinstance(request, dict):
            for fd in fds[1:]:
                os.close(fd)
            channel.close()
            return True
        pid = self._start(header, request, fds[1:])
        for fd in fds[1:]:
            os.close(fd)
        self.running[pid] = channel
        self._tell(pid, f"pid {pid}")
        return True

    def _reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            # Still a zombie, so its pid (and group id) cannot be anyone else's yet: kill what it
            # left running in its group, then reap it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            if self.spare is not None and self.spare[0] == pid:  # killed before any request
                self.spare[1].close()
                self.spare = None
            self._tell(pid, f"exit {os.waitstatus_to_exitcode(status)}")
            channel = self.running.pop(pid, None)
            if channel is not None:
                channel.close()

    def _tell(self, pid: int, message: str) -> None:
        channel = self.running.get(pid)
        if channel is not None:
            with contextlib.suppress(OSError):  # the worker stopped waiting (cancelled): fine
                channel.send(message.encode())


def main(argv: list[str]) -> int:
    """``argv``: ["-c", this file, mark, CONFIG]; CONFIG is JSON: {"parent": the worker's pid, "control":
    the control socket's descriptor, "runner": the runner's path, "preload": module names,
    "setting": where that list comes from, for the warning when one cannot be imported,
    "spare_name": the process name of a spare child}."""
    config = json.loads(argv[3])
    _set(_PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with its worker ...
    if os.getppid() != config["parent"]:  # ... which may have died before the line above
        return 1
    _set(_PR_SET_DUMPABLE, 0)  # commands (same user) may not ptrace it or read its memory
    for name in _STDLIB:
        importlib.import_module(name)
    runner = _load_runner(config["runner"])
    _preload(list(config["preload"]), config["setting"])
    # What is loaded now is shared by every fork: keep the collector off it, so that a command's
    # collections do not walk (and copy) the template's pages.
    gc.freeze()
    Server(runner, int(config["control"]), str(config.get("spare_name", ""))).serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
