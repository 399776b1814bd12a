"""The one TCP bind of noetl: the server listens with it, the launcher probes with it first."""

from __future__ import annotations

import errno
import socket

from noetl.errors import AlreadyRunningError, ConfigError


def bind(host: str, port: int, setting: str = "NOETL_PORT") -> socket.socket:
    """A TCP socket bound to host:port (not listening yet), or one line naming what is wrong.

    A taken port is ``AlreadyRunningError``; an address this machine does not have is
    ``ConfigError``. ``setting`` names the setting that chose the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only when it does, and
    # without it every small response waits out the client's delayed ACK (~40 ms per request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AlreadyRunningError(
                f"port {port} on {host} is already in use; stop what listens there or set {setting} "
                "to a free port"
            ) from None
        raise ConfigError(
            f"NOETL_HOST={host!r} {setting}={port}: cannot listen there ({exc.strerror}); "
            "use an address of this machine such as 0.0.0.0"
        ) from None
    return sock


def check_free(host: str, port: int, setting: str = "NOETL_PORT") -> None:
    """Refuse at once, with ``bind``'s line, when host:port could not be listened on."""
    bind(host, port, setting).close()
