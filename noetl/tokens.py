"""The API's two tokens when the environment sets none: generated once per NOETL_HOME, kept there.

``$NOETL_HOME/api-token`` (clients: the CLI, the UI, curl) and ``$NOETL_HOME/worker-token``
(workers only) are random, mode 0600, created without following links and reused on every start, so
a restart keeps the tokens clients already hold. ``noetl run`` hands them to its programs through
their environment (never through the rendered config); the CLI reads the client one when
``NOETL_API_TOKEN`` is unset.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path

from noetl.errors import ConfigError
from noetl.settings import Settings

API_TOKEN_FILE = "api-token"
WORKER_TOKEN_FILE = "worker-token"
# 32 random bytes, URL-safe: fits a header, a query string and a shell variable unquoted.
TOKEN_BYTES = 32


def token_path(home: Path, name: str) -> Path:
    return home / name


def read_token(path: Path) -> str | None:
    """The token kept at ``path``, or None when there is none (or it is not ours to read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, PermissionError):
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the token ({exc.strerror})") from None
    with os.fdopen(fd, "r", encoding="utf-8") as fh:
        token = fh.read().strip()
    return token or None


def _ensure_token(path: Path) -> str:
    existing = read_token(path)
    if existing is not None:
        return existing
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        # Another process wrote it a moment ago: theirs wins, so every program shares one token.
        existing = read_token(path)
        if existing is None:
            raise ConfigError(f"{path}: exists but holds no token; remove it to generate one") from None
        return existing
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the token ({exc.strerror}); check NOETL_HOME") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token


def ensure_tokens(settings: Settings) -> Settings:
    """The settings with both tokens set: from the environment, else from (or into) NOETL_HOME.

    With ``NOETL_AUTH=none`` nothing is generated and the settings are returned as they are.
    """
    if settings.auth == "none":
        return settings
    api = settings.api_token or _ensure_token(token_path(settings.home, API_TOKEN_FILE))
    worker = settings.worker_token or _ensure_token(token_path(settings.home, WORKER_TOKEN_FILE))
    return dataclasses.replace(settings, api_token=api, worker_token=worker)


def client_token(settings: Settings) -> str | None:
    """The token a client sends: NOETL_API_TOKEN, else the one ``noetl run`` kept in NOETL_HOME."""
    if settings.api_token or settings.auth == "none":
        return settings.api_token
    return read_token(token_path(settings.home, API_TOKEN_FILE))
