"""NOETL_HOME's own files: private directories, and PID, log and state files opened without links.

Whoever may write into NOETL_HOME, or plant a link where noetl writes a PID file, can make a root
launcher overwrite any file or read a PID of their choosing: ``check_private_dir`` refuses a
directory owned by another user or writable by group/others, and every open here uses O_NOFOLLOW
(a link in the last component is refused with one line naming it).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from noetl.errors import ConfigError


def check_private_dir(path: Path, setting: str) -> None:
    """Refuse ``path`` (when it exists) if another user owns it or group/others may write into it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        st = os.stat(path)  # a link the owner made to a directory of their own is fine: checked below
    if st.st_uid != os.geteuid():
        raise ConfigError(
            f"{setting}={str(path)!r} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}); "
            "use a directory of your own"
        )
    if st.st_mode & 0o022:
        raise ConfigError(
            f"{setting}={str(path)!r} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"`chmod go-w {path}`"
        )


def _open(path: Path, flags: int, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(
                f"{path} is a symbolic link; noetl does not follow links for its PID, log and state "
                "files: remove it"
            ) from None
        raise


def read_text(path: Path) -> str:
    """The file's text; FileNotFoundError when missing, ConfigError when it is a link."""
    fd = _open(path, os.O_RDONLY)
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as fh:
        return fh.read()


def write_text(path: Path, text: str) -> None:
    """Replace the file's content (created 0600); ConfigError when the path is a link."""
    fd = _open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def open_append(path: Path) -> int:
    """A descriptor to append to (created 0600), for a log; ConfigError when the path is a link."""
    return _open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def open_lock(path: Path) -> int:
    """A descriptor for a lock file (created 0600); ConfigError when the path is a link."""
    return _open(path, os.O_RDWR | os.O_CREAT)
