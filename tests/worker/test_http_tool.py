"""The http tool against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from noetl.tools.registry import Outcome, ToolContext, run_tool
from tests.services import free_port


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/query?"):
            query = parse_qs(urlsplit(self.path).query)
            self._send(200, json.dumps(query).encode(), "application/json")
        elif self.path == "/json":
            self._send(200, b'{"ok": true, "items": [1, 2]}', "application/json")
        elif self.path == "/text":
            self._send(200, b"plain words", "text/plain")
        elif self.path == "/missing":
            self._send(404, b'{"detail": "no such thing"}', "application/json")
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, b"late", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"body": body.decode(), "type": self.headers["Content-Type"], "x": self.headers.get("X-Test")}
        self._send(201, json.dumps(echo).encode(), "application/json")


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def http(timeout: float = 10, **tool: object) -> Outcome:
    """Run an http tool; ``timeout`` is the command's, ``timeout_seconds`` the tool's own."""
    return asyncio.run(run_tool({"kind": "http", **tool}, ToolContext(timeout)))


def test_json_response_is_parsed(server: str) -> None:
    outcome = http(url=f"{server}/json")
    assert outcome.ok
    assert outcome.result["status_code"] == 200
    # `data` is the parsed answer, as NoETL names it; `body` is the same
    assert outcome.result["data"] == outcome.result["body"] == {"ok": True, "items": [1, 2]}
    assert outcome.result["headers"]["content-type"] == "application/json"
    assert set(outcome.result) == {"status_code", "headers", "data", "body"}


def test_text_response_is_text(server: str) -> None:
    result = http(url=f"{server}/text").result
    assert result["data"] == result["body"] == "plain words"


def test_json_and_text_bodies_and_headers_are_sent(server: str) -> None:
    sent = http(url=f"{server}/echo", method="POST", json={"a": 1}, headers={"X-Test": "yes"}).result
    assert sent["status_code"] == 201
    assert json.loads(sent["body"]["body"]) == {"a": 1}
    assert sent["body"]["type"] == "application/json"
    assert sent["body"]["x"] == "yes"
    text = http(url=f"{server}/echo", method="POST", body="raw text").result["body"]
    assert text["body"] == "raw text"


def test_error_status_fails_with_the_response_kept(server: str) -> None:
    outcome = http(url=f"{server}/missing")
    assert not outcome.ok
    assert outcome.error == f"GET {server}/missing answered 404 Not Found"
    assert outcome.output is not None and outcome.output["data"] == {"detail": "no such thing"}
    assert outcome.output["status_code"] == 404


def test_no_answer_in_time_fails(server: str) -> None:
    outcome = http(url=f"{server}/slow", timeout=0.3)
    assert not outcome.ok
    assert outcome.error == f"GET {server}/slow: no answer within 0.3s"


def test_timeout_seconds_bounds_the_request_within_the_commands_time(server: str) -> None:
    outcome = http(url=f"{server}/slow", timeout_seconds=0.3, timeout=10)
    assert outcome.error == f"GET {server}/slow: no answer within 0.3s"
    # never longer than the command's own timeout
    outcome = http(url=f"{server}/slow", timeout_seconds=30, timeout=0.3)
    assert outcome.error == f"GET {server}/slow: no answer within 0.3s"


def test_params_make_the_query_string(server: str) -> None:
    result = http(url=f"{server}/query?", params={"a": "x y", "n": [1, 2], "t": True}).result
    assert result["data"] == {"a": ["x y"], "n": ["1", "2"], "t": ["true"]}


def test_noetls_endpoint_and_payload_are_url_and_json(server: str) -> None:
    sent = http(endpoint=f"{server}/echo", method="POST", payload={"b": [1]}).result
    assert sent["status_code"] == 201
    assert json.loads(sent["data"]["body"]) == {"b": [1]}
    assert sent["data"]["type"] == "application/json"


def test_connection_refused_fails_readably() -> None:
    outcome = http(url=f"http://127.0.0.1:{free_port()}/")
    assert not outcome.ok
    assert "ConnectError" in (outcome.error or "")


def test_credentials_in_the_url_are_not_repeated_in_errors() -> None:
    outcome = http(url=f"http://user:hunter2@127.0.0.1:{free_port()}/")
    assert "hunter2" not in (outcome.error or "")
