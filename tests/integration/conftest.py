from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
