"""A client for a running supervisord, over XML-RPC on the run directory's control socket.

The socket's URL and per-run credentials are read from the rendered configuration (mode 0600), so
only its owner (or root) can drive it. Calls go through ``rpc.call`` (a lean XML-RPC client: one
connection per call, each with its own timeout; the process-wide socket default is left alone).
Faults are mapped by ``faultCode`` (supervisor's own ``Faults``) to ``ControlError`` messages for
people.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from noetl.errors import ControlError, NotRunningError
from noetl.supervisor import rpc
from noetl.supervisor.paths import RunPaths

TYPE_CHECKING = False  # typing costs ~4 ms to import; mypy and ruff read this name as its
if TYPE_CHECKING:
    from typing import Any

UTF8_LONGEST = 4  # bytes of the longest UTF-8 character

# Messages by the names of supervisor.xmlrpc.Faults: its codes are looked up once a call has
# imported supervisor (~75 ms that `noetl ctl status` with nothing running need not pay).
_FAULTS = {
    "BAD_NAME": "no program or group named {name!r}; `noetl ctl status` lists them",
    "BAD_SIGNAL": "{name!r}: no such signal",
    "NO_FILE": "{name} has no log file to read",
    "SPAWN_ERROR": "{name} could not be started (spawn error); see `noetl ctl tail {name}`",
    "ABNORMAL_TERMINATION": "{name} exited while starting; see `noetl ctl tail {name}`",
    "ALREADY_STARTED": "{name} is already running",
    "NOT_RUNNING": "{name} is not running",
    "SHUTDOWN_STATE": "shutting down: supervisord accepts no more requests",
}


@dataclass(frozen=True)
class Endpoint:
    serverurl: str
    username: str
    password: str


def _section(text: str, name: str) -> dict[str, str]:
    """``key=value`` lines of one section of the config ``render`` wrote (no configparser: ~10 ms
    to import for three lines of a file whose format is ours)."""
    found: dict[str, str] = {}
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            inside = line == f"[{name}]"
        elif inside and "=" in line and not line.startswith((";", "#")):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip().replace("%%", "%")
    return found


def read_endpoint(paths: RunPaths) -> Endpoint:
    """The control URL and credentials from the rendered config; NotRunningError if there is none."""
    if not paths.socket.exists():
        raise NotRunningError(f"not running: no control socket at {paths.socket} (start it with `noetl run`)")
    try:
        section = _section(paths.config.read_text(encoding="utf-8"), "supervisorctl")
        return Endpoint(
            serverurl=section["serverurl"], username=section["username"], password=section["password"]
        )
    except PermissionError:
        raise ControlError(
            f"cannot read {paths.config}: it belongs to the user who ran `noetl run`; run as that user"
        ) from None
    except (OSError, KeyError, UnicodeDecodeError):
        raise NotRunningError(
            f"not running: no readable config at {paths.config} (start it with `noetl run`)"
        ) from None


class Control:
    """One connection to supervisord. Methods raise ControlError or NotRunningError."""

    def __init__(self, paths: RunPaths, timeout: float = 10.0) -> None:
        self.paths = paths
        self.endpoint = read_endpoint(paths)
        self.timeout = timeout

    def call(self, method: str, *args: Any, name: str = "") -> Any:
        endpoint = self.endpoint
        try:
            return rpc.call(
                endpoint.serverurl.removeprefix("unix://"),
                endpoint.username,
                endpoint.password,
                method,
                *args,
                timeout=self.timeout,
            )
        except rpc.Fault as fault:
            from supervisor.xmlrpc import getFaultDescription  # only on a fault: ~60 ms to import

            template = _FAULTS.get(getFaultDescription(fault.code))
            if template is None:
                raise ControlError(f"supervisord refused {method}: {fault.text}") from None
            error = ControlError(template.format(name=name or "it"))
            error.fault_code = fault.code
            raise error from None
        except rpc.HttpError as exc:
            if exc.status == 401:
                raise ControlError(
                    f"supervisord at {self.paths.socket} refused the credentials in {self.paths.config}; "
                    "was the config rewritten by another run?"
                ) from None
            failed = ControlError(f"supervisord answered HTTP {exc.status} to {method}")
            failed.http_status = exc.status
            raise failed from None
        except rpc.BadAnswer as exc:
            raise ControlError(f"supervisord at {self.paths.socket} answered nonsense: {exc}") from None
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED) or isinstance(exc, ConnectionError):
                raise NotRunningError(
                    f"not running: nothing answers on {self.paths.socket} (start it with `noetl run`)"
                ) from None
            raise ControlError(f"cannot talk to supervisord at {self.paths.socket}: {exc}") from None

    # --- queries -------------------------------------------------------------------------------

    def processes(self) -> list[dict[str, Any]]:
        return list(self.call("supervisor.getAllProcessInfo"))

    def resolve(self, name: str) -> str:
        """`worker_00` -> `workers:worker_00`; `workers` -> `workers:*`; full names pass through."""
        if name == "all" or ":" in name:
            return name
        infos = self.processes()
        for info in infos:
            if info["name"] == name:
                return f"{info['group']}:{info['name']}"
        if any(info["group"] == name for info in infos):
            return f"{name}:*"
        raise ControlError(_FAULTS["BAD_NAME"].format(name=name))

    # --- actions -------------------------------------------------------------------------------

    def start(self, name: str) -> None:
        if name == "all":
            self.call("supervisor.startAllProcesses", True)
        elif name.endswith(":*"):
            self.call("supervisor.startProcessGroup", name[:-2], True, name=name)
        else:
            self.call("supervisor.startProcess", name, True, name=name)

    def stop(self, name: str) -> None:
        if name == "all":
            self.call("supervisor.stopAllProcesses", True)
        elif name.endswith(":*"):
            self.call("supervisor.stopProcessGroup", name[:-2], True, name=name)
        else:
            self.call("supervisor.stopProcess", name, True, name=name)

    def restart(self, name: str) -> None:
        from supervisor.xmlrpc import Faults

        try:
            self.stop(name)
        except ControlError as exc:
            if exc.fault_code != Faults.NOT_RUNNING:
                raise
        self.start(name)

    def signal(self, sig: str, name: str) -> None:
        if name == "all":
            self.call("supervisor.signalAllProcesses", sig, name=sig)
        elif name.endswith(":*"):
            self.call("supervisor.signalProcessGroup", name[:-2], sig, name=name)
        else:
            self.call("supervisor.signalProcess", name, sig, name=name)

    def tail(self, name: str, offset: int, length: int, stderr: bool = False) -> tuple[bytes, int, bool]:
        """The last ``length`` bytes at most of ``name``'s log, its size, and whether more than
        ``length`` bytes came after ``offset`` (supervisord's tail).

        supervisord decodes that window strictly as UTF-8 and answers HTTP 500 when it starts inside
        a character (half the time, in a log of accented text): one up to three bytes shorter
        starts at the next character."""
        method = "supervisor.tailProcessStderrLog" if stderr else "supervisor.tailProcessStdoutLog"

        def window(cut: int) -> tuple[bytes, int, bool]:
            text, new_offset, overflow = self.call(method, name, offset, max(length - cut, 0), name=name)
            return text.encode("utf-8", "replace"), int(new_offset), bool(overflow)

        for cut in range(UTF8_LONGEST - 1):
            try:
                return window(cut)
            except ControlError as error:
                if error.http_status != 500:
                    raise
        return window(UTF8_LONGEST - 1)

    def reload(self) -> None:
        self.call("supervisor.restart")

    def shutdown(self) -> None:
        self.call("supervisor.shutdown")

    def pid(self) -> int:
        return int(self.call("supervisor.getPID"))
