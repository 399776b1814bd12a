"""A forwarding HTTP proxy between a worker and the server that loses answers on purpose.

Every request goes to the server; the answer to the first ``lose`` requests whose path ends with
``suffix`` is replaced with 502 after the server has applied them: exactly what a worker sees when
a load balancer times out or a connection drops after the server did the work.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.services import free_port


class LossyProxy:
    def __init__(self, upstream: str, suffix: str, lose: int = 1) -> None:
        self.upstream = upstream
        self.suffix = suffix
        self.lose = lose
        self.lost = 0
        self.forwarded: list[tuple[str, str, int]] = []  # (method, path, the server's status)
        self.port = free_port()
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=upstream, timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, bool]:
        answer = self._http.request(method, path, headers=headers, content=body)
        with self._lock:
            self.forwarded.append((method, path, answer.status_code))
            lose = path.endswith(self.suffix) and self.lost < self.lose
            if lose:
                self.lost += 1
        return answer.status_code, answer.content, lose

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                keep = ("authorization", "content-type")
                headers = {k: v for k, v in self.headers.items() if k.lower() in keep}
                status, content, lose = proxy._forward(self.command, self.path, headers, body)
                if lose:
                    status, content = 502, b'{"detail": "bad gateway (the answer was lost on purpose)"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = _relay

            def log_message(self, *_: Any) -> None:
                pass

        return Handler
