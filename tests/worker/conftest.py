from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Nats
from tests.stack import Stack
from tests.worker.harness import Cluster, clean_env


@pytest.fixture
def cluster(tmp_path: Path, pg_env: dict[str, str], nats: Nats) -> Iterator[Cluster]:
    """A fresh database and NATS; start the server and workers with the Cluster's methods."""
    c = Cluster(
        tmp=tmp_path,
        env=clean_env(
            **pg_env,
            NATS_URL=nats.url,
            NOETL_REAPER_INTERVAL="0.2",
            NOETL_LOG_LEVEL="info",
        ),
    )
    try:
        yield c
    finally:
        c.stop_all()


@pytest.fixture
def stack(tmp_path: Path, pg_env: dict[str, str], nats: Nats) -> Iterator[Stack]:
    """`noetl run` (not started yet) with two workers, a short lease and a fast reaper."""
    s = Stack(
        home=tmp_path / "home",
        env={
            **pg_env,
            "NATS_URL": nats.url,
            "NOETL_WORKERS": "2",
            "NOETL_REAPER_INTERVAL": "0.2",
            "NOETL_WORKER_LEASE": "2",
            "NOETL_WORKER_STOP_TIMEOUT": "10",
        },
    )
    try:
        yield s
    finally:
        s.stop()
