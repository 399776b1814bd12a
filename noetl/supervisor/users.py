"""The unprivileged users `noetl run` uses when started as root.

The server and workers run as ``NOETL_USER`` (default ``noetl``); the embedded PostgreSQL and NATS
run as ``SERVICES_USER``, another user, so that a tool (which runs as the worker's user) can read
neither the database's files nor NATS's configuration. Both are created as system users (no home,
no shell) when missing, the way a package's postinst would.
"""

from __future__ import annotations

import pwd
import subprocess
from pathlib import Path

from noetl.errors import ConfigError

SERVICES_USER = "noetl-pg"  # its name from when it ran PostgreSQL alone; kept for existing homes


def system_user(name: str, what: str) -> pwd.struct_passwd:
    """The user ``name``, created as a system user if missing; ConfigError when it cannot be."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ConfigError(
                f"noetl runs {what} as user {name} when started as root, and {name} could not be created "
                f"({done.stderr.strip() or done.returncode}); create it or run noetl as a normal user"
            ) from None
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise ConfigError(f"user {name} is root; noetl never runs {what} as root: name another user")
    return entry


def check_reachable(path: Path, entry: pwd.struct_passwd, what: str, setting: str = "NOETL_HOME") -> None:
    """Every directory above ``path`` must let ``entry`` through (x for others, or owned by it)."""
    for parent in path.resolve().parents:
        st = parent.stat()
        if st.st_uid == entry.pw_uid or st.st_mode & 0o001:
            continue
        raise ConfigError(
            f"{setting}={str(path.parent)!r}: {what} runs as user {entry.pw_name} when noetl runs as "
            f"root, and {parent} is closed to it; set {setting} to a directory it can reach, "
            "e.g. NOETL_HOME=/var/lib/noetl"
        )


def check_can_run(python: str, user: str) -> None:
    """The interpreter the server and workers run with must be reachable and runnable by ``user``."""
    entry = pwd.getpwnam(user)
    real = Path(python).resolve()
    closed = [p for p in real.parents if p.stat().st_uid != entry.pw_uid and not p.stat().st_mode & 0o001]
    if closed or not real.stat().st_mode & 0o001:
        raise ConfigError(
            f"noetl runs the server and workers as user {entry.pw_name} when started as root, and it "
            f"cannot run {python} ({closed[-1] if closed else real} is closed to it); install noetl "
            "where every user can read it (e.g. a venv under /opt) or set NOETL_USER"
        )
