"""The http tool against a real local HTTP server."""

from __future__ import annotations

import asyncio
import functools
import gzip
import io
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

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
        if self.path.startswith("/redirect/"):
            # /redirect/<status>/<target>: answer <status> with Location <target>.
            _, _, status, target = self.path.split("/", 3)
            self._redirect(int(status), unquote(target))
        elif urlsplit(self.path).path == "/loop":
            self._redirect(302, "/loop")
        elif self.path == "/headers":
            self._send(200, json.dumps(dict(self.headers)).encode(), "application/json")
        elif self.path == "/bomb":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(bomb())))
            self.end_headers()
            self.wfile.write(bomb())
        elif self.path.startswith("/query?"):
            query = parse_qs(urlsplit(self.path).query)
            self._send(200, json.dumps(query).encode(), "application/json")
        elif self.path == "/json":
            self._send(200, b'{"ok": true, "items": [1, 2]}', "application/json")
        elif self.path == "/text":
            self._send(200, b"plain words", "text/plain")
        elif urlsplit(self.path).path == "/missing":
            self._send(404, b'{"detail": "no such thing"}', "application/json")
        elif self.path == "/slow":
            time.sleep(3)
            self._send(200, b"late", "text/plain")

    def _redirect(self, status: int, target: str) -> None:
        self.send_response(status)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        if self.path.startswith("/redirect/"):
            self.rfile.read(int(self.headers["Content-Length"]))
            _, _, status, target = self.path.split("/", 3)
            self._redirect(int(status), unquote(target))
            return
        if self.path == "/headers":
            body = self.rfile.read(int(self.headers["Content-Length"]))
            echo = {"headers": dict(self.headers), "body": body.decode()}
            self._send(200, json.dumps(echo).encode(), "application/json")
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        echo = {"body": body.decode(), "type": self.headers["Content-Type"], "x": self.headers.get("X-Test")}
        self._send(201, json.dumps(echo).encode(), "application/json")


@functools.cache
def bomb() -> bytes:
    """256 MiB of zeros, gzipped to about 250 KiB."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        block = bytes(1 << 20)
        for _ in range(BOMB_MIB):
            gz.write(block)
    return out.getvalue()


BOMB_MIB = 256


def serve() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[str]:
    yield from serve()


@pytest.fixture
def other() -> Iterator[str]:
    """A second server: another origin (another port on 127.0.0.1)."""
    yield from serve()


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
    port = free_port()
    outcome = http(url=f"http://user:hunter2@127.0.0.1:{port}/")
    assert not outcome.ok
    assert outcome.error is not None
    # The failure is still named, with the URL it was for: the user stays, the password does not.
    assert outcome.error.startswith(f"GET http://user:***@127.0.0.1:{port}/: ConnectError"), outcome.error
    assert "hunter2" not in outcome.error


GIVEN = {"Authorization": "Bearer t0ken", "Cookie": "s=c00kie", "X-Api-Key": "k3y", "X-Custom": "mine"}


def redirect(server: str, status: int, target: str) -> str:
    return f"{server}/redirect/{status}/{quote(target, safe='')}"


def test_a_redirect_to_another_origin_loses_every_given_header(server: str, other: str) -> None:
    result = http(url=redirect(server, 302, f"{other}/headers"), headers=GIVEN).result
    assert result["status_code"] == 200
    received = {k.lower(): v for k, v in result["data"].items()}
    assert not {name.lower() for name in GIVEN} & set(received), received
    assert not {"t0ken", "c00kie", "k3y", "mine"} & set(received.values())
    # A redirect within the origin keeps them, and so does one more hop after it.
    same = http(url=redirect(server, 301, redirect(server, 302, "/headers")), headers=GIVEN).result
    assert {k: same["data"][k] for k in GIVEN} == GIVEN


def test_a_307_to_another_origin_keeps_the_body_but_no_header(server: str, other: str) -> None:
    result = http(
        url=redirect(server, 307, f"{other}/headers"), method="POST", body="payload", headers=GIVEN
    ).result
    assert result["data"]["body"] == "payload"
    assert not {name.lower() for name in GIVEN} & {k.lower() for k in result["data"]["headers"]}


def test_a_redirect_back_to_the_origin_after_leaving_it_stays_without_headers(
    server: str, other: str
) -> None:
    back = redirect(other, 302, f"{server}/headers")
    received = http(url=redirect(server, 302, back), headers=GIVEN).result["data"]
    assert not {name.lower() for name in GIVEN} & {k.lower() for k in received}


def test_a_redirect_loop_ends_with_one_line(server: str) -> None:
    outcome = http(url=f"{server}/loop?token=s3cret")
    assert outcome.error == f"GET {server}/loop?***: more than 10 redirects"


PROBE = """
import asyncio, json, resource, sys
from noetl.tools.registry import ToolContext, run_tool

async def main(url):
    await run_tool({"kind": "http", "url": url + "/text"}, ToolContext(10))  # imports, buffers
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = await run_tool({"kind": "http", "url": url + "/bomb"}, ToolContext(60))
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    body = outcome.result["body"]
    print(json.dumps({"ok": outcome.ok, "grew_kib": grew, "zeros": body.count(chr(0)), "end": body[-12:]}))

asyncio.run(main(sys.argv[1]))
"""


def test_a_gzip_bomb_is_cut_without_being_inflated(server: str) -> None:
    from noetl.tools.base import OUTPUT_LIMIT
    from noetl.tools.http import BODY_LIMIT

    bomb()  # built before the probe starts, outside its measurement
    done = subprocess.run([sys.executable, "-c", PROBE, server], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["ok"] and seen["end"].endswith("\n[and more]")
    assert 0 < seen["zeros"] <= OUTPUT_LIMIT
    # 256 MiB behind 250 KiB: the worker's memory grew by a few times the body limit at most, never
    # by a whole decompressed network chunk (about 64 MiB of zeros each).
    assert seen["grew_kib"] < 3 * BODY_LIMIT // 1024, seen


def test_query_strings_never_reach_errors_or_the_log(server: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    refused = http(url=f"http://127.0.0.1:{free_port()}/x?token=s3cret", params={"api_key": "k3y"})
    assert refused.error is not None and "ConnectError" in refused.error
    assert refused.error.startswith("GET http://127.0.0.1:") and "/x?***:" in refused.error
    answered = http(url=f"{server}/missing?token=s3cret", params={"api_key": "k3y"})
    assert answered.error == f"GET {server}/missing?***: answered 404 Not Found".replace(
        ": answered", " answered"
    )
    http(url=f"{server}/query?token=s3cret", params={"api_key": "k3y"})
    assert "HTTP Request" in caplog.text  # httpx did log the requests...
    for secret in ("s3cret", "k3y"):
        assert secret not in caplog.text  # ...without their query strings
        assert secret not in (refused.error + str(answered.error))
