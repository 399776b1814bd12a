"""A real HTTP/1.1 server on 127.0.0.1 whose answers a test scripts: ``handler(httpx.Request)``
returns the ``httpx.Response`` to send, or raises to cut the connection without an answer.

It runs in a thread (the standard library's ``ThreadingHTTPServer``, keep-alive on), so the
client under test talks over a real socket: its connection handling is tested too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Handler = Callable[[httpx.Request], httpx.Response]


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: Handler) -> None:
        super().__init__(("127.0.0.1", 0), _Exchange)
        self.handler = handler
        self.connections = 0  # TCP connections accepted
        self.drop_after_answer = False  # close each connection after its answer, without saying so

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Exchange(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StubServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = f"http://server{self.path}"
        request = httpx.Request(self.command, url, headers=dict(self.headers), content=body)
        try:
            response = self.server.handler(request)
        except Exception:
            self.close_connection = True  # no answer at all: the client sees the connection cut
            return
        content = response.content
        self.send_response(response.status_code, response.reason_phrase)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        if response.headers.get("connection", "").lower() == "close":
            self.send_header("Connection", "close")  # and the base class closes it after the answer
        self.end_headers()
        self.wfile.write(content)
        if self.server.drop_after_answer:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _any


@contextmanager
def serving(handler: Handler) -> Iterator[StubServer]:
    server = StubServer(handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
