"""A supervisord XML-RPC transport over the run's unix socket, with its own timeout.

``supervisor.xmlrpc.SupervisorTransport`` connects without a timeout, so a supervisord that
accepts and never answers would hang the caller; setting the process-wide socket default instead
would change every other socket of the process.
"""

from __future__ import annotations

import socket

from supervisor.xmlrpc import SupervisorTransport, UnixStreamHTTPConnection


class _UnixConnection(UnixStreamHTTPConnection):
    """supervisor's unix-socket connection, with this connection's timeout on its socket."""

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socketfile)


class TimedTransport(SupervisorTransport):
    """``SupervisorTransport`` over a unix socket whose every call gives up after ``timeout`` s."""

    def __init__(self, username: str, password: str, serverurl: str, timeout: float) -> None:
        super().__init__(username, password, serverurl)
        path = serverurl.removeprefix("unix://")

        def get_connection() -> _UnixConnection:
            connection = _UnixConnection("localhost", timeout=timeout)
            connection.socketfile = path
            return connection

        self._get_connection = get_connection
