"""Fixtures of the fault suite.

- ``stack``: a `noetl run` (two workers, short leases) on a PostgreSQL and a NATS of the test's
  own (``own_pg``, ``own_nats``), which the test may crash and start again on the same data;
- ``ledger``: the side-effect files the suite's commands write (``ledger.Ledger``);
- ``rig``: a server and one worker behind a ``gate.Gate``, on their own PostgreSQL and NATS, one
  per module (its workers' lease is the module's ``LEASE``), healed before each test.

Leases and the reaper are short so that a killed worker's command comes back within seconds; the
suite bounds every wait.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.ledger import Ledger
from tests.faults.rig import Rig, running_rig
from tests.services import Nats, Postgres, nats_server, postgres_server
from tests.stack import Stack

# Fast recovery: a lost lease is noticed within ~4.5 s (heartbeats every lease/3).
FAULT_SETTINGS = {
    "NOETL_WORKERS": "2",
    "NOETL_WORKER_CONCURRENCY": "4",
    "NOETL_WORKER_LEASE": "4",
    "NOETL_REAPER_INTERVAL": "0.5",
    "NOETL_STOP_TIMEOUT": "5",
    "NOETL_WORKER_STOP_TIMEOUT": "6",
}
WORKERS = {"worker_00", "worker_01"}


@pytest.fixture
def own_pg() -> Iterator[Postgres]:
    """A PostgreSQL of this test's own, which it may stop and start."""
    # Not under tmp_path: the PostgreSQL user must be able to reach the directory.
    with tempfile.TemporaryDirectory(prefix="noetl-faults-pg-") as tmp, postgres_server(Path(tmp)) as pg:
        pg.create_database("noetl")
        yield pg


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[Nats]:
    with nats_server(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def stack(tmp_path: Path, own_pg: Postgres, own_nats: Nats) -> Iterator[Stack]:
    """A `noetl run` (not started yet) with two workers and short leases."""
    s = Stack(
        home=tmp_path / "home",
        env={**own_pg.env("noetl"), "NATS_URL": own_nats.url, **FAULT_SETTINGS},
    )
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    """The test's side-effect files, where the workers' user can write them."""
    # Not under tmp_path: pytest makes its base directory 0700 again whenever a session starts.
    with tempfile.TemporaryDirectory(prefix="noetl-ledger-") as tmp:
        yield Ledger(Path(tmp))


@pytest.fixture(scope="module")
def module_rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """One rig per module, its workers' lease the module's ``LEASE``."""
    with running_rig(tmp_path_factory.mktemp("rig"), lease=float(request.module.LEASE)) as found:
        yield found


@pytest.fixture
def rig(module_rig: Rig) -> Rig:
    """The module's rig with everything running again and no call held."""
    module_rig.heal()
    return module_rig
