"""Bad input, missing token, PostgreSQL and NATS outages, configuration errors: never a 500."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ROOT, Server, clean_env, submit, wait_for
from tests.services import Nats, Postgres, free_port, postgres_server

pytestmark = pytest.mark.integration

VALID = {"tool": {"kind": "shell", "command": "echo hi"}}


@pytest.fixture
def own_pg() -> Iterator[Postgres]:
    """A PostgreSQL of this test's own, which the test may stop (never the session's)."""
    # Not under tmp_path: the PostgreSQL user must be able to reach the directory.
    with tempfile.TemporaryDirectory(prefix="noetl-own-pg-") as tmp, postgres_server(Path(tmp)) as pg:
        pg.create_database("noetl")
        yield pg


def test_postgres_outage_gives_503_then_recovers(
    own_pg: Postgres, nats: Nats, make_server: Callable[..., Server]
) -> None:
    server = make_server(clean_env(**own_pg.env("noetl"), NATS_URL=nats.url, NOETL_REAPER_INTERVAL="0.2"))
    with server.client() as api:
        before = submit(api)
        own_pg.stop()
        ready = wait_for(lambda: (r := api.get("/api/ready")).status_code == 503 and r, what="ready 503")
        assert ready.json() == {"status": "not ready", "postgres": False, "nats": True}
        write = api.post("/api/executions", json=VALID)
        assert write.status_code == 503
        assert write.json() == {"detail": "the database is unavailable; retry later"}
        assert api.get(f"/api/executions/{before['execution_id']}").status_code == 503
        claim = api.post(f"/api/commands/{before['command_id']}/claim", json={"worker_id": "w"})
        assert claim.status_code == 503
        assert api.get("/api/health").status_code == 200
        assert "noetl_database_up 0.0" in api.get("/metrics").text
        own_pg.start()
        server.wait_ready()
        after = submit(api)
        assert api.get(f"/api/executions/{after['execution_id']}").json()["status"] == "RUNNING"
        assert (
            api.post(f"/api/commands/{before['command_id']}/claim", json={"worker_id": "w"}).status_code
            == 200
        )
    assert server.proc is not None and server.proc.poll() is None  # never crashed
    assert "Traceback" not in server.log.read_text()


def test_server_starts_while_postgres_and_nats_are_down(
    tmp_path: Path, make_server: Callable[..., Server]
) -> None:
    nats_port = free_port()
    nats = Nats(f"nats://127.0.0.1:{nats_port}", nats_port, free_port(), tmp_path / "late-nats")
    nats.store_dir.mkdir()
    pg_dir = Path(tempfile.mkdtemp(prefix="noetl-late-pg-"))
    os.chmod(pg_dir, 0o755)
    pg = Postgres(free_port(), pg_dir / "data", pg_dir / "sock", pg_dir / "postgres.log")
    pg.init()
    env = clean_env(**pg.env("postgres"), NATS_URL=nats.url)
    server = make_server(env, wait_ready=False)
    try:
        with server.client() as api:
            assert api.get("/api/ready").json() == {"status": "not ready", "postgres": False, "nats": False}
            assert api.post("/api/executions", json=VALID).status_code == 503
            pg.start()
            nats.start()
            server.wait_ready()
            submit(api)  # the schema was created by the background opener
    finally:
        server.stop()
        nats.stop()
        pg.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "valid dictionary"),
        (b'{"tool": {"kind": "teleport"}}', "teleport"),
        (b'{"tool": {"kind": "shell"}}', "tool.command: Value error, give `command` or `cmds`, one of them"),
        (b'{"timeout": 5}', "tool: Field required"),
        (b'{"tool": {"kind": "shell", "command": "x"}, "timeout": -1}', "timeout"),
        (b'{"tool": {"kind": "shell", "command": "x"}, "max_attempts": 0}', "max_attempts"),
        (b'{"tool": {"kind": "shell", "command": "x\\u0000"}}', "NUL"),
        (b'{"tool": {"kind": "python", "code": "x", "args": {"n": NaN}}}', "NaN"),
        (b'{"tool": {"kind": "http", "url": "ftp://x"}}', "url"),
        (b'{"tool": {"kind": "shell", "command": "x", "comand": 1}}', "comand"),
    ],
)
def test_malformed_submissions_get_422_with_one_line(api: httpx.Client, body: bytes, fragment: str) -> None:
    response = api.post("/api/executions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    assert fragment in detail


def test_malformed_worker_calls_get_4xx(api: httpx.Client) -> None:
    cid = submit(api)["command_id"]
    cases = [
        ("/api/commands/not-a-uuid/claim", {"worker_id": "w"}),
        (f"/api/commands/{cid}/claim", {}),
        (f"/api/commands/{cid}/claim", {"worker_id": "w", "lease_seconds": 0}),
        (f"/api/commands/{cid}/heartbeat", {"worker_id": "w", "attempt": 2**40}),
        (f"/api/commands/{cid}/events", {"worker_id": "w", "attempt": 1, "type": "exploded"}),
        (f"/api/commands/{cid}/events", {"worker_id": "w", "attempt": 1, "type": "failed", "payload": {}}),
        ("/api/workers", {"worker_id": "w", "pid": -1}),
        ("/api/workers/w/heartbeat", {"running": "c1"}),
    ]
    for path, body in cases:
        response = api.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert isinstance(response.json()["detail"], str)


def test_oversized_body_gets_413(server_env: dict[str, str], make_server: Callable[..., Server]) -> None:
    server = make_server({**server_env, "NOETL_MAX_BODY_BYTES": "2048"})
    big = {"tool": {"kind": "shell", "command": "x" * 4096}}
    with server.client() as api:
        response = api.post("/api/executions", json=big)
        assert response.status_code == 413
        assert "NOETL_MAX_BODY_BYTES" in response.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
            yield b'{"tool": {"kind": "shell", "command": "'
            yield b"x" * 4096
            yield b'"}}'

        streamed = api.post("/api/executions", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        assert api.post("/api/executions", json=VALID).status_code == 201


def _run_server(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noetl.server", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_postgres_host_unset_exits_2_with_one_line() -> None:
    done = _run_server(clean_env())
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "set POSTGRES_HOST" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use_exits_5_with_one_line(pg_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_server(clean_env(**pg_env), "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 5
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_init_db_fails_fast_when_the_database_does_not_exist(pg_env: dict[str, str]) -> None:
    env = clean_env(**{**pg_env, "POSTGRES_DB": "no_such_database"})
    done = _run_server(env, "--init-db", "--port", str(free_port()))
    assert done.returncode == 2
    assert "database 'no_such_database' does not exist" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def password_pg() -> Iterator[Postgres]:
    """A PostgreSQL whose TCP logins need a password: user noetl_app, password right-password."""
    with (
        tempfile.TemporaryDirectory(prefix="noetl-pw-pg-") as tmp,
        postgres_server(Path(tmp), require_passwords=True) as pg,
    ):
        pg.sql("CREATE ROLE noetl_app LOGIN PASSWORD 'right-password'")
        pg.sql("CREATE DATABASE noetl OWNER noetl_app")
        yield pg


@pytest.mark.parametrize("password", ["wrong-password", ""])
def test_init_db_fails_fast_when_postgres_refuses_credentials(password_pg: Postgres, password: str) -> None:
    env = clean_env(
        **{**password_pg.env("noetl"), "POSTGRES_USER": "noetl_app", "POSTGRES_PASSWORD": password}
    )
    done = _run_server(env, "--init-db", "--port", str(free_port()))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"noetl server: PostgreSQL at 127.0.0.1:{password_pg.port}/noetl refused user 'noetl_app': "
        'password authentication failed for user "noetl_app"; fix POSTGRES_USER/POSTGRES_PASSWORD'
    ]
    # The same user with the right password gets in: it was the password that was refused.
    right = {**env, "POSTGRES_PASSWORD": "right-password"}
    init = subprocess.run(
        [sys.executable, "-m", "noetl", "db", "init"],
        env=right,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    assert init.stdout.startswith("schema at version ")


def test_sigterm_stops_cleanly_within_the_stop_timeout(server: Server, api: httpx.Client) -> None:
    submit(api)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    # NOETL_STOP_TIMEOUT is 5 here: the server must be gone before a supervisor would SIGKILL it.
    code = server.proc.wait(timeout=5)
    server.proc = None
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    log = server.log.read_text()
    assert "server stopped" in log
    assert "Traceback" not in log
