"""Embedded PostgreSQL and NATS: supervised like every other program when none is configured.

``plan`` decides from the settings alone what to embed; ``effective`` points the settings (and so
the children's environment) at it; ``prepare`` is the one step with effects: it finds the binaries
of the `noetl[embedded]` extra, creates the data directories under NOETL_HOME, runs ``initdb`` and
creates the database on first start, and writes NATS's configuration with a new token.

Both are locked: PostgreSQL listens on a unix socket in a private directory (TCP on 127.0.0.1 only
when NOETL_EMBEDDED_POSTGRES_PORT is set) and asks for a password (scram-sha-256) on both; the
application role is not a superuser (a separate superuser ran initdb and created it). NATS asks for
a token that is new at every start and reaches the server and workers in NATS_URL, through the
environment only: never on a command line, never in the supervisord configuration. As root both run
as ``users.SERVICES_USER``, not as the server's and workers' user.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path

from noetl.errors import ConfigError
from noetl.settings import Settings
from noetl.supervisor import files, users
from noetl.supervisor.programs import SERVICES_GROUP, Program

# Fast shutdown (SIGINT) of an idle PostgreSQL takes well under a second; NATS flushes JetStream.
POSTGRES_STOPWAITSECS = 10
NATS_STOPWAITSECS = 10
INSTALL_HINT = "pip install 'noetl[embedded]'"
# The socket's file name carries a port even without TCP: .s.PGSQL.5432 in the private directory.
SOCKET_ONLY_PORT = 5432
SUPERUSER = "postgres"


@dataclass(frozen=True)
class Plan:
    postgres: bool
    nats: bool


@dataclass(frozen=True)
class Secrets:
    """What ``prepare`` generated, for the programs' environment only."""

    postgres_password: str | None = None
    nats_token: str | None = None


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


def socket_dir(settings: Settings) -> Path:
    return postgres_dir(settings) / "run"


def password_file(settings: Settings) -> Path:
    """The application role's password (0600, the launcher's user): generated at initdb."""
    return settings.home / "postgres.password"


def superuser_password_file(settings: Settings) -> Path:
    return settings.home / "postgres-superuser.password"


def nats_dir(settings: Settings) -> Path:
    return settings.home / "nats"


def nats_config(settings: Settings) -> Path:
    """NATS's configuration (0600, the services' user): it holds the token, so it is not on argv."""
    return nats_dir(settings) / "nats.conf"


def effective(settings: Settings, what: Plan) -> Settings:
    """The settings the programs see: pointed at the embedded services (secrets: ``with_secrets``)."""
    if what.postgres:
        port = settings.embedded_postgres_port
        settings = dataclasses.replace(
            settings,
            # asyncpg and libpq take a directory as the host: the unix socket in it.
            postgres_host="127.0.0.1" if port else str(socket_dir(settings)),
            postgres_port=port or SOCKET_ONLY_PORT,
        )
    if what.nats:
        settings = dataclasses.replace(settings, nats_url=f"nats://127.0.0.1:{settings.embedded_nats_port}")
    return settings


def with_secrets(settings: Settings, what: Plan, generated: Secrets) -> Settings:
    """``settings`` (effective) with the generated password and token, for the environment only."""
    if what.postgres and generated.postgres_password:
        settings = dataclasses.replace(settings, postgres_password=generated.postgres_password)
    if what.nats and generated.nats_token:
        settings = dataclasses.replace(
            settings, nats_url=f"nats://{generated.nats_token}@127.0.0.1:{settings.embedded_nats_port}"
        )
    return settings


@dataclass(frozen=True)
class Binaries:
    postgres: str = "postgres"
    initdb: str = "initdb"
    nats_server: str = "nats-server"


def programs(settings: Settings, what: Plan, bins: Binaries, run_as_root: bool) -> list[Program]:
    """The [program:...] entries of the embedded services (in their own group, started first)."""
    result = []
    user = users.SERVICES_USER if run_as_root else None
    if what.postgres:
        data = postgres_dir(settings) / "data"
        tcp = settings.embedded_postgres_port
        result.append(
            Program(
                name="postgres",
                command=[
                    bins.postgres,
                    "-D",
                    str(data),
                    "-c",
                    f"listen_addresses={'127.0.0.1' if tcp else ''}",
                    "-c",
                    f"port={tcp or SOCKET_ONLY_PORT}",
                    "-c",
                    f"unix_socket_directories={socket_dir(settings)}",
                ],
                stopwaitsecs=POSTGRES_STOPWAITSECS,
                stopsignal="INT",  # fast shutdown: clean, and no crash recovery on the next start
                stopasgroup=False,  # the postmaster stops its own backends
                user=user,
                group=SERVICES_GROUP,
            )
        )
    if what.nats:
        result.append(
            Program(
                name="nats",
                command=[bins.nats_server, "-c", str(nats_config(settings))],
                stopwaitsecs=NATS_STOPWAITSECS,
                user=user,
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


def prepare(settings: Settings, what: Plan, bins: Binaries, run_as_root: bool) -> Secrets:
    """Users, data directories, initdb and the app role on first start, NATS's config: the secrets."""
    owner: tuple[int, int] | None = None  # (uid, gid) of the services' user when running as root
    app_gid: int | None = None
    if run_as_root:
        app = users.system_user(settings.user, "the server and workers")
        app_gid = app.pw_gid
        if what.postgres or what.nats:
            entry = users.system_user(users.SERVICES_USER, "the embedded PostgreSQL and NATS")
            users.check_reachable(settings.home / "postgres", entry, "the embedded PostgreSQL")
            owner = (entry.pw_uid, entry.pw_gid)
    token = _prepare_nats(settings, owner) if what.nats else None
    password = _prepare_postgres(settings, bins, owner, app_gid) if what.postgres else None
    return Secrets(postgres_password=password, nats_token=token)


def _own(path: Path, owner: tuple[int, int] | None, mode: int, group: int | None = None) -> None:
    if owner is not None:
        os.chown(path, owner[0], owner[1] if group is None else group, follow_symlinks=False)
    os.chmod(path, mode, follow_symlinks=False)


def _prepare_nats(settings: Settings, owner: tuple[int, int] | None) -> str:
    store = nats_dir(settings)
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    _own(store, owner, 0o700)
    if owner is not None:  # a store an earlier run wrote as root
        for root, dirs, names in os.walk(store):
            for name in [*dirs, *names]:
                os.chown(os.path.join(root, name), *owner, follow_symlinks=False)
    token = secrets.token_urlsafe(32)
    config = nats_config(settings)
    text = (
        "# Written by `noetl run` at every start, with a new token: do not edit.\n"
        f"listen: 127.0.0.1:{settings.embedded_nats_port}\n"
        f'jetstream {{ store_dir: "{store}" }}\n'
        f'authorization {{ token: "{token}" }}\n'
    )
    tmp = config.with_name(config.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    _own(tmp, owner, 0o600)
    os.replace(tmp, config)
    return token


def _prepare_postgres(
    settings: Settings, bins: Binaries, owner: tuple[int, int] | None, app_gid: int | None
) -> str:
    if settings.postgres_user == SUPERUSER:
        raise ConfigError(
            f"POSTGRES_USER={SUPERUSER!r}: the embedded PostgreSQL keeps {SUPERUSER} as its superuser "
            "and the server's role is not one; choose another name (default noetl)"
        )
    base = postgres_dir(settings)
    data = base / "data"
    for path in (base, socket_dir(settings)):
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        # As root the server's user (its group) may pass through to the socket, and nothing more;
        # run by one user, the directories are its alone.
        _own(path, owner, 0o710 if owner is not None else 0o700, app_gid)
    as_user: dict[str, object] = {}
    if owner is not None:
        as_user = {"user": owner[0], "group": owner[1], "extra_groups": []}
    if (data / "PG_VERSION").exists():
        try:
            return files.read_text(password_file(settings)).strip()
        except FileNotFoundError:
            raise ConfigError(
                f"{data} was created by an earlier noetl with password-less access; move {base} away "
                "(its data goes with it) to let noetl create a locked one, or set POSTGRES_HOST"
            ) from None
    superuser_password = secrets.token_urlsafe(32)
    password = secrets.token_urlsafe(32)
    files.write_text(superuser_password_file(settings), superuser_password + "\n")
    pwfile = base / "initdb.pw"
    pwfile.unlink(missing_ok=True)
    files.write_text(pwfile, superuser_password + "\n")
    _own(pwfile, owner, 0o600)
    try:
        _run(
            [
                bins.initdb,
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
            ],
            as_user,
            "initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    role = _ident(settings.postgres_user)
    if settings.postgres_db == "postgres":
        database = "ALTER DATABASE postgres OWNER TO " + role
    else:
        database = f"CREATE DATABASE {_ident(settings.postgres_db)} OWNER {role}"
    _run(
        [bins.postgres, "--single", "-D", str(data), "-c", "unix_socket_directories=", "postgres"],
        as_user,
        "creating the application role and database",
        # Each line is one statement; the password goes in on stdin, never on a command line.
        stdin=(
            f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{password}';\n"
            f"{database};\n"
        ),
    )
    files.write_text(password_file(settings), password + "\n")
    return password


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _run(argv: list[str], as_user: dict[str, object], what: str, stdin: str | None = None) -> None:
    import subprocess

    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
        **as_user,  # type: ignore[call-overload]
    )
    # Single-user mode reports a failed statement on stderr and still exits 0.
    errors = [line for line in done.stderr.splitlines() if "ERROR:" in line or "FATAL:" in line]
    if done.returncode != 0 or errors:
        last = errors[:1] or (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ConfigError(f"embedded PostgreSQL: {what} failed: {last[0].strip()}")
