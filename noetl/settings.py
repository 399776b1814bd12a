"""The one place that reads noetl's settings.

Every setting is declared once in ``FIELDS`` with its environment variable, parser, default, help
and CLI flag (if it has one). ``load_settings`` builds a frozen ``Settings`` from, in rising
precedence: the defaults, the optional TOML file named by ``NOETL_CONFIG``, the environment, and
CLI flags; ``add_flags`` declares a command's flags from the table and ``flag_values`` reads them
back. Nothing else in the package reads ``os.environ``; nothing reads it at import time.

A bad value raises ``ConfigError`` with one line naming the variable, the value (masked when it is
a secret) and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from noetl.errors import ConfigError

# Every noetl process loads this module first: it stays free of ``typing`` (~4 ms to import) and of
# ``urllib.parse`` until a URL is parsed (mypy and ruff read this name as typing's).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

ROLES = ("all", "server", "worker")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
EMBEDDED_MODES = ("auto", "always", "never")
AUTH_MODES = ("token", "none")


class _Invalid(ValueError):
    """Raised by a parser; its text says what is allowed."""


# --- parsers: str -> value, raising _Invalid("what is allowed") ------------------------------


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise _Invalid(f"expected a whole number from {lo} to {hi}") from None
        if not lo <= value <= hi:
            raise _Invalid(f"expected a whole number from {lo} to {hi}")
        return value

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise _Invalid(f"expected a number of seconds from {lo:g} to {hi:g}") from None
        if not lo <= value <= hi:  # also rejects nan
            raise _Invalid(f"expected a number of seconds from {lo:g} to {hi:g}")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise _Invalid("expected one of: " + ", ".join(allowed))
        return value

    return parse


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _Invalid("expected true or false (1/0, yes/no, on/off)")


# Hostnames and IP literals only: letters, digits, dots, dashes, colons (IPv6) and underscores.
_HOST_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,253}$")


def _host(raw: str) -> str:
    value = raw.strip()
    if not _HOST_RE.match(value):
        raise _Invalid("expected a host name or IP address (letters, digits, '.', '-', ':')")
    return value


# A name used in NATS subjects, stream names and database identifiers.
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$")


def _name(raw: str) -> str:
    value = raw.strip()
    if not _NAME_RE.match(value):
        raise _Invalid("expected 1-64 letters, digits, '_' or '-'")
    return value


def _subject(raw: str) -> str:
    value = raw.strip()
    if not _SUBJECT_RE.match(value):
        raise _Invalid("expected dot-separated tokens of letters, digits, '_' or '-' (no wildcards)")
    return value


def _text(raw: str) -> str:
    """Free text that is never rendered into a config file (passwords, tokens, db names)."""
    if any(ch in raw for ch in "\r\n\x00"):
        raise _Invalid("expected a single line without NUL characters")
    return raw


def _optional_text(raw: str) -> str | None:
    value = _text(raw)
    return value or None


# Characters that could end a line, start a comment or an expansion in supervisord's INI format.
_UNSAFE_PATH_CHARS = set("\r\n\x00;%#[]\"'\\")


def _module_names(raw: str) -> str:
    """Comma-separated module import paths, kept as ``a,b.c`` (empty: none)."""
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise _Invalid(f"expected module names separated by commas (like pandas,numpy), not {name!r}")
    return ",".join(dict.fromkeys(names))


def _path(raw: str) -> Path:
    value = raw.strip()
    if not value:
        raise _Invalid("expected a directory path")
    bad = sorted({ch for ch in value if ch in _UNSAFE_PATH_CHARS or not ch.isprintable()})
    if bad:
        raise _Invalid("expected a path without " + " ".join(repr(ch) for ch in bad))
    return Path(value)


def _optional_path(raw: str) -> Path | None:
    return _path(raw) if raw.strip() else None


def _optional_port(raw: str) -> int | None:
    if not raw.strip():
        return None
    return _int_range(1, 65535)(raw)


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        from urllib.parse import urlsplit

        value = raw.strip()
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
            parts = None
        if (
            parts is None
            or not port_ok
            or parts.scheme not in schemes
            or not parts.hostname
            or any(ch.isspace() or not ch.isprintable() for ch in value)
        ):
            raise _Invalid("expected a URL like " + " or ".join(f"{s}://host:port" for s in schemes))
        return value.rstrip("/")

    return parse


def _nats_urls(raw: str) -> str:
    """One URL or a comma-separated list of NATS server URLs."""
    single = _url("nats", "tls", "ws", "wss")
    urls = [single(part) for part in raw.split(",") if part.strip()]
    if not urls:
        raise _Invalid("expected a URL like nats://host:4222")
    return ",".join(urls)


def mask_url(url: str) -> str:
    """Replace the password of every URL in a comma-separated list with ***."""
    from urllib.parse import urlsplit, urlunsplit

    def one(u: str) -> str:
        try:
            parts = urlsplit(u)
        except ValueError:
            return "***"
        cred, at, hostport = parts.netloc.rpartition("@")
        if not at:
            return u
        user, colon, _ = cred.partition(":")
        hidden = f"{user}:***" if colon else "***"
        return urlunsplit(parts._replace(netloc=f"{hidden}@{hostport}"))

    return ",".join(one(u) for u in url.split(","))


# --- the declaration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One setting: where it comes from, how it is parsed, its default, its help and its flag."""

    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    secret: bool = False
    # How to show the value when it is not a plain secret (for example a URL with a password).
    show: Callable[[Any], str] | None = None
    # The command-line flag that sets it, for the commands that take it (see add_flags), and the
    # placeholder --help shows for its value.
    flag: str | None = None
    metavar: str | None = None


FIELDS: dict[str, Field] = {
    "host": Field(
        "NOETL_HOST", _host, "0.0.0.0", "Address the API server listens on.", flag="--host", metavar="HOST"
    ),
    "port": Field(
        "NOETL_PORT",
        _int_range(1, 65535),
        8082,
        "Port the API server listens on.",
        flag="--port",
        metavar="PORT",
    ),
    "role": Field(
        "NOETL_ROLE",
        _choice(*ROLES),
        "all",
        "What `noetl run` supervises: all, server or worker.",
        flag="--role",
        metavar="ROLE",
    ),
    "workers": Field(
        "NOETL_WORKERS",
        _int_range(1, 64),
        2,
        "Number of worker processes (role all or worker).",
        flag="--workers",
        metavar="N",
    ),
    "worker_concurrency": Field(
        "NOETL_WORKER_CONCURRENCY",
        _int_range(1, 256),
        4,
        "Commands one worker process runs at once.",
        flag="--concurrency",
        metavar="N",
    ),
    "stop_timeout": Field(
        "NOETL_STOP_TIMEOUT",
        _int_range(1, 3600),
        10,
        "Seconds the server gets to stop after SIGTERM before SIGKILL.",
    ),
    "worker_stop_timeout": Field(
        "NOETL_WORKER_STOP_TIMEOUT",
        _int_range(2, 3600),
        20,
        "Seconds a worker gets to drain after SIGTERM before SIGKILL.",
    ),
    "worker_lease": Field(
        "NOETL_WORKER_LEASE",
        _float_range(1, 3600),
        30.0,
        "Seconds a worker's claim on a command lasts without a heartbeat (it heartbeats every third).",
    ),
    "worker_chain": Field(
        "NOETL_WORKER_CHAIN",
        _bool,
        True,
        "A worker reporting a command's end asks for the next command in the answer (chained "
        "dispatch: a playbook's next step without a notice or a claim request).",
    ),
    "python_preload": Field(
        "NOETL_PYTHON_PRELOAD",
        _module_names,
        "",
        "Modules (comma-separated) each worker imports once in its warm python template, so that "
        "python commands start with them already imported; none by default.",
    ),
    "process_name": Field(
        "SUPERVISOR_PROCESS_NAME",
        _optional_text,
        None,
        "This program's name, set by supervisord in each child (worker ids read host:name:pid).",
    ),
    "enable_ui": Field("NOETL_ENABLE_UI", _bool, False, "Serve the web UI from the API server."),
    "log_level": Field("NOETL_LOG_LEVEL", _choice(*LOG_LEVELS), "info", "Log level of every program."),
    "log_format": Field(
        "NOETL_LOG_FORMAT", _choice(*LOG_FORMATS), "text", "text (`name | line`) or json (one object a line)."
    ),
    "home": Field(
        "NOETL_HOME",
        _path,
        Path("~/.noetl"),
        "State directory: PID files, run dir, embedded data (default for root: /var/lib/noetl).",
    ),
    "run_dir": Field(
        "NOETL_RUN_DIR",
        _optional_path,
        None,
        "Directory of the rendered config, control socket and logs (default: $NOETL_HOME/run).",
        flag="--run-dir",
        metavar="DIR",
    ),
    "nats_url": Field(
        "NATS_URL",
        _nats_urls,
        "nats://127.0.0.1:4222",
        "NATS server URL(s), comma-separated.",
        show=mask_url,
        flag="--nats-url",
        metavar="URL",
    ),
    "nats_stream": Field(
        "NOETL_NATS_STREAM", _name, "NOETL_COMMANDS", "JetStream stream that carries command notices."
    ),
    "nats_subject": Field("NOETL_NATS_SUBJECT", _subject, "noetl.commands", "Subject of command notices."),
    "server_url": Field(
        "NOETL_SERVER_URL",
        _url("http", "https"),
        None,
        "API URL for workers and client commands (default: http://127.0.0.1:$NOETL_PORT).",
        show=mask_url,
        flag="--server-url",
        metavar="URL",
    ),
    "api_token": Field(
        "NOETL_API_TOKEN",
        _optional_text,
        None,
        "Client token: every API call but the probes needs `Authorization: Bearer <token>` "
        "(unset: `noetl run` generates one in $NOETL_HOME/api-token).",
        secret=True,
    ),
    "worker_token": Field(
        "NOETL_WORKER_TOKEN",
        _optional_text,
        None,
        "Workers' token: only the worker routes (claim, leases, events, registry) take it "
        "(unset: generated in $NOETL_HOME/worker-token).",
        secret=True,
    ),
    "auth": Field(
        "NOETL_AUTH",
        _choice(*AUTH_MODES),
        "token",
        "token: every call but the probes needs a token; none: no auth (refused unless NOETL_HOST "
        "is a loopback address).",
    ),
    "metrics_public": Field(
        "NOETL_METRICS_PUBLIC", _bool, True, "/metrics (counts only) answers without a token."
    ),
    "reaper_interval": Field(
        "NOETL_REAPER_INTERVAL",
        _float_range(0.05, 60),
        2.0,
        "Seconds between the server's sweeps for expired leases and unpublished commands.",
    ),
    "max_body_bytes": Field(
        "NOETL_MAX_BODY_BYTES",
        _int_range(1024, 64 * 1024 * 1024),
        1024 * 1024,
        "Largest request body the API server accepts (bigger ones get 413).",
    ),
    "db_pool_size": Field(
        "NOETL_DB_POOL_SIZE", _int_range(1, 200), 10, "PostgreSQL connections each server process keeps."
    ),
    "postgres_host": Field(
        "POSTGRES_HOST", _optional_text, None, "PostgreSQL host (unset: embedded PostgreSQL)."
    ),
    "postgres_port": Field("POSTGRES_PORT", _int_range(1, 65535), 5432, "PostgreSQL port."),
    "postgres_db": Field("POSTGRES_DB", _text, "noetl", "PostgreSQL database."),
    "postgres_user": Field("POSTGRES_USER", _text, "noetl", "PostgreSQL user."),
    "postgres_password": Field(
        "POSTGRES_PASSWORD", _text, "", "PostgreSQL password (never written to files).", secret=True
    ),
    "embedded": Field(
        "NOETL_EMBEDDED",
        _choice(*EMBEDDED_MODES),
        "auto",
        "auto: `noetl run` supervises its own PostgreSQL when POSTGRES_HOST is unset and its own NATS "
        "when NATS_URL is unset; always: both, whatever is set; never: neither.",
    ),
    "embedded_postgres_port": Field(
        "NOETL_EMBEDDED_POSTGRES_PORT",
        _optional_port,
        None,
        "TCP port of the embedded PostgreSQL on 127.0.0.1, with a generated password "
        "(unset: its unix socket only, in a private directory).",
    ),
    "embedded_nats_port": Field(
        "NOETL_EMBEDDED_NATS_PORT", _int_range(1, 65535), 14222, "Port of the embedded NATS server."
    ),
    "user": Field(
        "NOETL_USER",
        _name,
        "noetl",
        "Unprivileged user `noetl run` runs the server and workers as when started as root "
        "(created as a system user if missing).",
    ),
    "db_acquire_timeout": Field(
        "NOETL_DB_ACQUIRE_TIMEOUT",
        _float_range(0.05, 60),
        5.0,
        "Seconds a request waits for a free PostgreSQL connection before it gets 503 with Retry-After.",
    ),
    "limit_concurrency": Field(
        "NOETL_LIMIT_CONCURRENCY",
        _int_range(10, 100_000),
        1000,
        "Requests and connections one server process serves at once; more get 503 at once.",
    ),
    "retention_days": Field(
        "NOETL_RETENTION_DAYS",
        _int_range(0, 36_500),
        30,
        "Finished executions (with their commands, steps and events) and offline workers older than "
        "this many days are deleted by the server; 0 keeps everything.",
    ),
}

CONFIG_ENV = "NOETL_CONFIG"
ROOT_HOME = Path("/var/lib/noetl")


@dataclass(frozen=True)
class Settings:
    """The effective settings, typed and validated. Build it with ``load_settings``."""

    host: str
    port: int
    role: str
    workers: int
    worker_concurrency: int
    stop_timeout: int
    worker_stop_timeout: int
    worker_lease: float
    worker_chain: bool
    python_preload: str
    process_name: str | None
    enable_ui: bool
    log_level: str
    log_format: str
    home: Path
    run_dir: Path
    nats_url: str
    nats_stream: str
    nats_subject: str
    server_url: str
    api_token: str | None
    worker_token: str | None
    auth: str
    metrics_public: bool
    reaper_interval: float
    max_body_bytes: int
    db_pool_size: int
    postgres_host: str | None
    postgres_port: int
    postgres_db: str
    postgres_user: str
    postgres_password: str
    embedded: str
    embedded_postgres_port: int | None
    embedded_nats_port: int
    user: str
    db_acquire_timeout: float
    limit_concurrency: int
    retention_days: int
    # Where each value came from, by field name: "default", "NOETL_CONFIG file", "environment", "flag".
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={self.shown(name)!r}" for name in FIELDS)
        return f"Settings({shown})"

    def shown(self, name: str) -> str:
        """The value of a field as it may be printed or logged: secrets masked."""
        return _shown(name, getattr(self, name))

    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, for children that rebuild them with ``load_settings``."""
        env: dict[str, str] = {}
        for name, field in FIELDS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool):
                env[field.env] = "true" if value else "false"
            else:
                env[field.env] = str(value)
        return env

    def dsn(self) -> str:
        """A libpq-style DSN without the password (asyncpg takes the password separately)."""
        return (
            f"postgresql://{self.postgres_user}@{self.postgres_host}:{self.postgres_port}/{self.postgres_db}"
        )


def _shown(name: str, value: Any) -> str:
    field = FIELDS[name]
    if value is None:
        return ""
    if field.secret:
        return "***" if value else ""
    if field.show is not None:
        return field.show(value)
    return str(value)


def _describe(name: str, raw: Any) -> str:
    field = FIELDS[name]
    if field.secret:
        return "'***'"
    text = str(raw)
    if field.show is not None:
        text = field.show(text)
    return repr(text)


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{CONFIG_ENV}={str(path)!r}: no such file; fix the path or unset it") from None
    except OSError as exc:
        raise ConfigError(f"{CONFIG_ENV}={str(path)!r}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_ENV}={str(path)!r} is not valid TOML: {exc}") from None
    table = data.get("noetl", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{CONFIG_ENV}={str(path)!r}: [noetl] must be a table")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"{CONFIG_ENV}={str(path)!r}: unknown setting {unknown[0]!r}; "
            "known settings are the lower-case names in `noetl config check --help`"
        )
    return table


def _toml_to_text(name: str, value: Any, path: Path) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise ConfigError(f"{name}={_describe(name, value)} in {path}: expected a string, number or boolean")


def load_settings(
    environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
) -> Settings:
    """Build the settings from defaults < NOETL_CONFIG file < environment < flags.

    ``environ`` defaults to ``os.environ``; ``flags`` maps field names to values given on the
    command line (``None`` values are ignored). Raises ``ConfigError`` on the first bad value.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, tuple[str, str]] = {}  # name -> (text, where)

    config_path = env.get(CONFIG_ENV, "").strip()
    if config_path:
        path = Path(config_path).expanduser()
        for name, value in _read_toml(path).items():
            raw[name] = (_toml_to_text(name, value, path), f"{name} in {path}")
    for name, field in FIELDS.items():
        if field.env in env:
            raw[name] = (env[field.env], field.env)
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in FIELDS:
            raise KeyError(name)
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        raw[name] = (text, FIELDS[name].flag or "--" + name.replace("_", "-"))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, field in FIELDS.items():
        if name not in raw:
            values[name] = field.default
            sources[name] = "default"
            continue
        text, where = raw[name]
        try:
            values[name] = field.parse(text)
        except _Invalid as exc:
            raise ConfigError(f"{where}={_describe(name, text)} is not valid: {exc}") from None
        sources[name] = where

    if sources["home"] == "default" and os.geteuid() == 0:
        # root's ~ is closed to other users, and the embedded PostgreSQL cannot run as root: a
        # system service keeps its state in /var/lib.
        values["home"] = ROOT_HOME
    values["home"] = _expand_home(values["home"], env, sources["home"])
    if values["run_dir"] is None:
        values["run_dir"] = values["home"] / "run"
    else:
        values["run_dir"] = _expand_home(values["run_dir"], env, sources["run_dir"])
    if values["server_url"] is None:
        values["server_url"] = f"http://127.0.0.1:{values['port']}"
    if values["auth"] == "none" and not is_loopback(values["host"]):
        raise ConfigError(
            f"{sources['auth']}=none needs a loopback NOETL_HOST (127.0.0.1, ::1 or localhost), "
            f"not {values['host']!r}: anyone who reaches the port could run commands"
        )
    return Settings(**values, sources=sources)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _expand_home(path: Path, env: Mapping[str, str], where: str) -> Path:
    """Expand a leading ~ with the HOME of ``env``, and check the result is still a safe path."""
    text = str(path)
    if text == "~" or text.startswith("~/"):
        text = (env.get("HOME") or str(Path.home())) + text[1:]
        try:
            return Path(os.path.abspath(_path(text)))
        except _Invalid as exc:
            raise ConfigError(f"{where}: ~ expands to {text!r}, which is not valid: {exc}") from None
    # Absolute and without `..`, as supervisord reads it (it would resolve a relative path against
    # its own cwd and collapse `..`): the paths we print and check are the ones it uses.
    return Path(os.path.abspath(path))


def add_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Declare the flags of these settings on ``parser``, as ``FIELDS`` names them.

    The values stay text (``None`` when not given): ``load_settings`` parses them like any other
    source, so a bad one is the same one line and exit 2 as a bad environment variable.
    """
    for name in names:
        field = FIELDS[name]
        if field.flag is None:
            raise ValueError(f"setting {name!r} has no flag in FIELDS")
        text = field.help.removesuffix(".").replace("%", "%%")
        parser.add_argument(field.flag, dest=name, metavar=field.metavar, help=f"{text} ({field.env})")


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings flags ``add_flags`` declared, by setting name, for ``load_settings(flags=...)``."""
    return {name: getattr(args, name) for name in FIELDS if FIELDS[name].flag and hasattr(args, name)}


def check_name(where: str, raw: str) -> str:
    """A name as the settings take them (1-64 ASCII letters, digits, '_' or '-'), or ConfigError."""
    try:
        return _name(raw)
    except _Invalid as exc:
        raise ConfigError(f"{where}={raw!r} is not valid: {exc}") from None


def describe_fields() -> list[tuple[str, str, str, str]]:
    """(env var, toml key, default, help) for every setting: for --help and the README."""
    rows = []
    for name, field in FIELDS.items():
        default = "" if field.default is None else str(field.default)
        if isinstance(field.default, bool):
            default = "true" if field.default else "false"
        rows.append((field.env, name, default, field.help))
    return rows
