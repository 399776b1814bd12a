from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.open_python import open_python
from tests.services import Nats
from tests.stack import Stack


@pytest.fixture
def stack(tmp_path: Path, pg_env: dict[str, str], nats: Nats) -> Iterator[Stack]:
    """A `noetl run` (not started yet) pointed at a fresh database and a NATS server."""
    s = Stack(home=tmp_path / "home", env={**pg_env, "NATS_URL": nats.url})
    try:
        yield s
    finally:
        s.stop()


# The control socket's credentials are new for every run; `config render` masks the password.
_CREDENTIALS = re.compile(r"^(username|password)=.*$", re.MULTILINE)


def assert_render_matches_the_written_config(stack: Stack) -> None:
    """`noetl config render` with the run's environment prints the config the run wrote."""
    done = subprocess.run(
        [open_python(), "-m", "noetl", "config", "render"],  # the interpreter the run used
        env=stack.full_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    written = (stack.run_dir / "supervisord.conf").read_text(encoding="utf-8")
    assert _CREDENTIALS.sub(r"\1=", done.stdout) == _CREDENTIALS.sub(r"\1=", written)
