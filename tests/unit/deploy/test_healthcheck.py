"""The image's HEALTHCHECK: /api/health for roles with the API, supervisord for a worker."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from noetl.deploy.healthcheck import check_api, health_url, main
from noetl.settings import load_settings


class Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    Handler.status = 200


def env_for(server: http.server.HTTPServer, **extra: str) -> dict[str, str]:
    return {"NOETL_PORT": str(server.server_address[1]), **extra}


def test_wildcard_listen_address_is_checked_on_loopback() -> None:
    assert health_url(load_settings({"NOETL_PORT": "8082"})) == "http://127.0.0.1:8082/api/health"
    assert health_url(load_settings({"NOETL_HOST": "::", "NOETL_PORT": "1"})) == "http://[::1]:1/api/health"
    assert health_url(load_settings({"NOETL_HOST": "10.0.0.5"})) == "http://10.0.0.5:8082/api/health"


def test_api_healthy_when_it_answers_200(api: http.server.HTTPServer) -> None:
    assert check_api(load_settings(env_for(api))) is None


def test_api_unhealthy_when_it_answers_an_error(api: http.server.HTTPServer) -> None:
    Handler.status = 503
    assert "answered 503" in str(check_api(load_settings(env_for(api))))


def test_api_unhealthy_when_nothing_listens(api: http.server.HTTPServer) -> None:
    settings = load_settings(env_for(api))
    api.shutdown()
    api.server_close()
    assert "does not answer" in str(check_api(settings))


@pytest.mark.parametrize("role", ["all", "server"])
def test_an_answering_api_is_not_enough_without_supervised_processes(
    api: http.server.HTTPServer, role: str, tmp_path: Path
) -> None:
    out = io.StringIO()
    assert main(env_for(api, NOETL_ROLE=role, NOETL_RUN_DIR=str(tmp_path)), out) == 1
    assert "not running" in out.getvalue()


def test_worker_role_asks_supervisord_not_http(api: http.server.HTTPServer, tmp_path: Path) -> None:
    # An API answers on the port, but a worker container has none: only its processes count.
    out = io.StringIO()
    assert main(env_for(api, NOETL_ROLE="worker", NOETL_RUN_DIR=str(tmp_path)), out) == 1
    assert "not running" in out.getvalue()


def test_bad_settings_are_unhealthy_not_a_traceback() -> None:
    out = io.StringIO()
    assert main({"NOETL_PORT": "http"}, out) == 1
    assert out.getvalue().startswith("unhealthy: NOETL_PORT=")
