"""Embedded PostgreSQL and NATS: supervised like every other program when none is configured.

``plan`` decides from the settings alone what to embed; ``effective`` points the settings (and so
the children's environment) at it; ``prepare`` is the one step with effects: it finds the binaries
of the `noetl[embedded]` extra, creates the data directories under NOETL_HOME, runs ``initdb`` and
creates the database on first start. PostgreSQL refuses to run as root, so as root it runs as the
unprivileged system user ``PG_SYSTEM_USER`` (created on first use).
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path

from noetl.errors import ConfigError
from noetl.settings import Settings
from noetl.supervisor.programs import SERVICES_GROUP, Program

PG_SYSTEM_USER = "noetl-pg"
# Fast shutdown (SIGINT) of an idle PostgreSQL takes well under a second; NATS flushes JetStream.
POSTGRES_STOPWAITSECS = 10
NATS_STOPWAITSECS = 10
INSTALL_HINT = "pip install 'noetl[embedded]'"


@dataclass(frozen=True)
class Plan:
    postgres: bool
    nats: bool


def plan(settings: Settings) -> Plan:
    """What `noetl run` embeds: only for roles that run the server, and only what is not configured."""
    if settings.embedded == "never" or settings.role not in ("all", "server"):
        return Plan(postgres=False, nats=False)
    if settings.embedded == "always":
        return Plan(postgres=True, nats=True)
    return Plan(
        postgres=not settings.postgres_host,
        nats=settings.sources.get("nats_url", "default") == "default",
    )


def postgres_dir(settings: Settings) -> Path:
    return settings.home / "postgres"


def nats_dir(settings: Settings) -> Path:
    return settings.home / "nats"


def effective(settings: Settings, what: Plan) -> Settings:
    """The settings the programs see: pointed at the embedded services."""
    if what.postgres:
        settings = dataclasses.replace(
            settings, postgres_host="127.0.0.1", postgres_port=settings.embedded_postgres_port
        )
    if what.nats:
        settings = dataclasses.replace(settings, nats_url=f"nats://127.0.0.1:{settings.embedded_nats_port}")
    return settings


@dataclass(frozen=True)
class Binaries:
    postgres: str = "postgres"
    initdb: str = "initdb"
    nats_server: str = "nats-server"


def programs(settings: Settings, what: Plan, bins: Binaries, run_as_root: bool) -> list[Program]:
    """The [program:...] entries of the embedded services (in their own group, started first)."""
    result = []
    if what.postgres:
        data = postgres_dir(settings) / "data"
        result.append(
            Program(
                name="postgres",
                command=[
                    bins.postgres,
                    "-D",
                    str(data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={settings.embedded_postgres_port}",
                    "-c",
                    f"unix_socket_directories={postgres_dir(settings) / 'run'}",
                ],
                stopwaitsecs=POSTGRES_STOPWAITSECS,
                stopsignal="INT",  # fast shutdown: clean, and no crash recovery on the next start
                stopasgroup=False,  # the postmaster stops its own backends
                user=PG_SYSTEM_USER if run_as_root else None,
                group=SERVICES_GROUP,
            )
        )
    if what.nats:
        result.append(
            Program(
                name="nats",
                command=[
                    bins.nats_server,
                    "-js",
                    "-sd",
                    str(nats_dir(settings)),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(settings.embedded_nats_port),
                ],
                stopwaitsecs=NATS_STOPWAITSECS,
                group=SERVICES_GROUP,
            )
        )
    return result


def find_binaries(what: Plan, settings: Settings) -> Binaries:
    """The binaries of the embedded extra; ConfigError naming what to set or install when missing."""
    postgres = initdb = nats_server = ""
    if what.postgres:
        try:
            with warnings.catch_warnings():
                # embedded_postgres asks platformdirs for a runtime dir it does not use here.
                warnings.simplefilter("ignore")
                from embedded_postgres._commands import POSTGRES_BIN_PATH
        except ImportError:
            raise ConfigError(
                "POSTGRES_HOST is not set and the embedded PostgreSQL is not installed: "
                f"set POSTGRES_HOST (and POSTGRES_PORT, POSTGRES_DB, ...) or {INSTALL_HINT}"
            ) from None
        postgres = str(Path(POSTGRES_BIN_PATH) / "postgres")
        initdb = str(Path(POSTGRES_BIN_PATH) / "initdb")
    if what.nats:
        found = (
            shutil.which("nats-server", path=str(Path(sys.executable).parent))
            or shutil.which("nats-server", path=sysconfig.get_path("scripts"))
            or shutil.which("nats-server")
        )
        if not found:
            raise ConfigError(
                "NATS_URL is not set and the embedded NATS server is not installed: "
                f"set NATS_URL or {INSTALL_HINT}"
            )
        nats_server = found
    return Binaries(
        postgres=postgres or "postgres", initdb=initdb or "initdb", nats_server=nats_server or "nats-server"
    )


def prepare(settings: Settings, what: Plan, bins: Binaries, run_as_root: bool) -> None:
    """Create the data directories; initdb and CREATE DATABASE on PostgreSQL's first start."""
    if what.nats:
        nats_dir(settings).mkdir(parents=True, exist_ok=True, mode=0o700)
    if not what.postgres:
        return
    base = postgres_dir(settings)
    data = base / "data"
    for path in (base, base / "run"):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    as_user: dict[str, object] = {}
    if run_as_root:
        entry = _system_user()
        _check_reachable(base, entry)
        for path in (base, base / "run"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
        as_user = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    if (data / "PG_VERSION").exists():
        return
    _run(
        [bins.initdb, "-D", str(data), "-U", settings.postgres_user, "--auth=trust", "-E", "UTF8"],
        as_user,
        "initdb",
    )
    if settings.postgres_db != "postgres":
        name = settings.postgres_db.replace('"', '""')
        _run(
            [bins.postgres, "--single", "-D", str(data), "-c", "unix_socket_directories=", "postgres"],
            as_user,
            "creating the database",
            stdin=f'CREATE DATABASE "{name}";\n',
        )


def _run(argv: list[str], as_user: dict[str, object], what: str, stdin: str | None = None) -> None:
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
        **as_user,  # type: ignore[call-overload]
    )
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"embedded PostgreSQL: {what} failed: {last[0]}")


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        pass
    done = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ConfigError(
            f"embedded PostgreSQL refuses to run as root and the user {PG_SYSTEM_USER} could not be created "
            f"({done.stderr.strip() or done.returncode}); run noetl as a normal user or set POSTGRES_HOST"
        )
    return pwd.getpwnam(PG_SYSTEM_USER)


def _check_reachable(path: Path, entry: pwd.struct_passwd) -> None:
    """As root, PostgreSQL runs as another user: every parent directory must let it through."""
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid == entry.pw_uid:
            continue
        if st.st_mode & 0o001 == 0:
            raise ConfigError(
                f"NOETL_HOME={str(path.parent)!r}: the embedded PostgreSQL runs as user {PG_SYSTEM_USER} "
                f"when noetl runs as root, and {parent} is closed to it; set NOETL_HOME to a directory "
                "it can reach, e.g. NOETL_HOME=/var/lib/noetl"
            )
