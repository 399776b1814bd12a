"""README's quick start with auth on by default: `noetl run` alone (embedded PostgreSQL and NATS,
no token set anywhere), then `noetl submit ... --wait` from another shell with no token typed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from noetl.tokens import API_TOKEN_FILE, WORKER_TOKEN_FILE
from tests.integration.test_embedded import PROGRAMS, _clean_env, _embedded_stack, home  # noqa: F401
from tests.stack import Stack

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def another_shell(**extra: str) -> dict[str, str]:
    """A shell that never heard of noetl's settings: only HOME-like basics and ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("NOETL_", "POSTGRES_")) and k != "NATS_URL"
    }
    return {**env, **extra}


def noetl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "noetl", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_quick_start_generates_tokens_and_the_cli_finds_them(home: Path) -> None:  # noqa: F811
    stack: Stack = _embedded_stack(home)
    _clean_env(stack)
    stack.env.update(NOETL_API_TOKEN="", NOETL_WORKER_TOKEN="")  # as in a fresh shell: none set
    try:
        stack.start()
        stack.wait_running(PROGRAMS)
        stack.wait_ready()
        api_file, worker_file = home / API_TOKEN_FILE, home / WORKER_TOKEN_FILE
        for path in (api_file, worker_file):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = api_file.read_text().strip()
        assert len(token) >= 40 and token != worker_file.read_text().strip()
        # The launcher says where the API answers and how to authenticate, Jupyter-style.
        out = stack.output()
        assert f"API token in {api_file} (the CLI reads it there)" in out
        assert f"curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{stack.port}/api/executions" in out
        assert "API on http://127.0.0.1:" in out  # where it really listens (NOETL_HOST=127.0.0.1)
        # Neither token is written into the supervisord config.
        config = (stack.run_dir / "supervisord.conf").read_text()
        assert token not in config and worker_file.read_text().strip() not in config

        # Another shell: no token typed; the CLI finds it in NOETL_HOME.
        shell = another_shell(NOETL_HOME=str(home), NOETL_PORT=str(stack.port))
        done = noetl(shell, "submit", "shell", "--command", "echo hi", "--wait")
        assert done.returncode == 0, done.stderr
        assert '"stdout": "hi\\n"' in done.stdout
        # Without the file (another home) the same call is refused: one line, exit 2.
        elsewhere = another_shell(NOETL_HOME=str(home.parent / "elsewhere"), NOETL_PORT=str(stack.port))
        refused = noetl(elsewhere, "status")
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1 and "(401)" in refused.stderr, refused.stderr

        # A restart keeps the token: what clients hold still works.
        assert stack.stop() == 0
        stack.start()
        stack.wait_running(PROGRAMS)
        stack.wait_ready()
        assert api_file.read_text().strip() == token
        again = noetl(shell, "submit", "shell", "--command", "echo again", "--wait")
        assert again.returncode == 0, again.stderr
    finally:
        stack.stop()
